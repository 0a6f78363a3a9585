/* A tiny KTAP writer for C probes: the same output as the Rust writer in guest-tests/src/lib.rs.
 *
 *   KTAP version 1
 *   1..N
 *   # fact: KEY = VALUE        facts belong to the result line that follows them
 *   ok N name | not ok N name # reason | ok N name # SKIP reason
 *
 * Every line is flushed as soon as it is written: a probe may crash at any point, and what it printed
 * up to then must already be in the pipe to init. Keys are [a-z0-9_.-]+ (checked: a bad key is a bug
 * in the probe and aborts it); values and reasons are made single-line.
 *
 * Also the spellings facts share with the Rust probes (guest-tests/src/child.rs, sys.rs) and the host:
 * how a child ended (ktap_child_end: "exited N", "killed by signal N (SIGNAME)") and a call that
 * succeeded (KTAP_OK: "ok"). */
#ifndef KTAP_H
#define KTAP_H

#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

/* How a fact says that a call succeeded. */
#define KTAP_OK "ok"

static int ktap_next = 1;

static inline void ktap_emit(const char *text)
{
	fputs(text, stdout);
	fputc('\n', stdout);
	if (fflush(stdout) != 0 || ferror(stdout)) {
		fputs("ktap: cannot write to stdout\n", stderr);
		exit(2);
	}
}

/* A line made single-line: KTAP is line-based. */
static inline void ktap_vemit(const char *prefix, const char *fmt, va_list ap)
{
	char line[1024];
	size_t n = strlen(prefix);
	if (n >= sizeof line)
		n = sizeof line - 1;
	memcpy(line, prefix, n);
	line[n] = 0;
	vsnprintf(line + n, sizeof line - n, fmt, ap);
	for (char *p = line; *p; p++)
		if (*p == '\n' || *p == '\r')
			*p = ' ';
	ktap_emit(line);
}

static inline void ktap_begin(int plan)
{
	char line[32];
	ktap_emit("KTAP version 1");
	snprintf(line, sizeof line, "1..%d", plan);
	ktap_emit(line);
}

__attribute__((format(printf, 2, 3)))
static inline void ktap_fact(const char *key, const char *fmt, ...)
{
	char prefix[160];
	va_list ap;
	if (!*key || strspn(key, "abcdefghijklmnopqrstuvwxyz0123456789_.-") != strlen(key)
	    || strlen(key) > 120) {
		fprintf(stderr, "ktap: invalid fact key \"%s\"\n", key);
		abort();
	}
	snprintf(prefix, sizeof prefix, "# fact: %s = ", key);
	va_start(ap, fmt);
	ktap_vemit(prefix, fmt, ap);
	va_end(ap);
}

static inline void ktap_result(const char *status, const char *name, const char *directive)
{
	char prefix[160];
	if (!*name || strpbrk(name, "#\n\r")) {
		fprintf(stderr, "ktap: invalid test name \"%s\"\n", name);
		abort();
	}
	snprintf(prefix, sizeof prefix, "%s %d %s", status, ktap_next++, name);
	if (directive) {
		char line[1024];
		snprintf(line, sizeof line, "%s # %s", prefix, directive);
		for (char *p = line; *p; p++)
			if (*p == '\n' || *p == '\r')
				*p = ' ';
		ktap_emit(line);
	} else {
		ktap_emit(prefix);
	}
}

static inline void ktap_ok(const char *name) { ktap_result("ok", name, NULL); }

static inline void ktap_not_ok(const char *name, const char *reason) { ktap_result("not ok", name, reason); }

static inline void ktap_skip(const char *name, const char *reason)
{
	char directive[960];
	snprintf(directive, sizeof directive, "SKIP %s", reason);
	ktap_result("ok", name, directive);
}

/* The symbolic name of a signal ("SIGSEGV"), or "?". */
static inline const char *ktap_signal_name(int signal)
{
	switch (signal) {
#define KTAP_SIGNAL(name) case name: return #name;
	KTAP_SIGNAL(SIGHUP) KTAP_SIGNAL(SIGINT) KTAP_SIGNAL(SIGQUIT) KTAP_SIGNAL(SIGILL)
	KTAP_SIGNAL(SIGTRAP) KTAP_SIGNAL(SIGABRT) KTAP_SIGNAL(SIGBUS) KTAP_SIGNAL(SIGFPE)
	KTAP_SIGNAL(SIGKILL) KTAP_SIGNAL(SIGUSR1) KTAP_SIGNAL(SIGSEGV) KTAP_SIGNAL(SIGUSR2)
	KTAP_SIGNAL(SIGPIPE) KTAP_SIGNAL(SIGALRM) KTAP_SIGNAL(SIGTERM) KTAP_SIGNAL(SIGSTKFLT)
	KTAP_SIGNAL(SIGCHLD) KTAP_SIGNAL(SIGCONT) KTAP_SIGNAL(SIGSTOP) KTAP_SIGNAL(SIGTSTP)
	KTAP_SIGNAL(SIGTTIN) KTAP_SIGNAL(SIGTTOU) KTAP_SIGNAL(SIGURG) KTAP_SIGNAL(SIGXCPU)
	KTAP_SIGNAL(SIGXFSZ) KTAP_SIGNAL(SIGVTALRM) KTAP_SIGNAL(SIGPROF) KTAP_SIGNAL(SIGWINCH)
	KTAP_SIGNAL(SIGIO) KTAP_SIGNAL(SIGPWR) KTAP_SIGNAL(SIGSYS)
#undef KTAP_SIGNAL
	}
	return "?";
}

/* How a child ended, from its wait status: "exited N" or "killed by signal N (SIGNAME)", in `out`. */
static inline const char *ktap_child_end(int status, char *out, size_t n)
{
	if (WIFSIGNALED(status))
		snprintf(out, n, "killed by signal %d (%s)", WTERMSIG(status), ktap_signal_name(WTERMSIG(status)));
	else
		snprintf(out, n, "exited %d", WEXITSTATUS(status));
	return out;
}

#endif
