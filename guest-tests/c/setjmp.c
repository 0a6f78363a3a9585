/* Probe for suite `setjmp`: how setjmp/longjmp save and resume an execution context on x86_64, built
 * once against musl (musl-gcc) and once against glibc (gcc) from this same source, each statically:
 *
 *   cc -static -O1 -g0 -Wall -Wextra -o OUT setjmp.c setjmp_asm.S
 *
 * The harness names the two probes `musl` and `glibc`, so every fact below appears as
 * musl.TEST.KEY and glibc.TEST.KEY side by side. Test names and keys are the same for both libcs;
 * where a question does not apply to one of them the value says so (`n/a`).
 *
 * Facts are offsets, slot indices, register names, booleans and return values: never an address, a
 * PID, a time or the pointer guard. Tests 1-6 are properties of the libc (and compiler) and must be
 * identical on every kernel; test 7 asks the kernel about user shadow stacks.
 *
 * Output: KTAP on stdout (ktap.h). A test is `not ok` only when the probe itself could not do what it
 * tried (a jump that did not come back, a system call that failed unexpectedly); what the libc does is
 * recorded as facts, never judged. Exit status 1 if a test was not ok. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ktap.h"
#include "sj_shared.h"

/* ---- the asm side (setjmp_asm.S) ---- */

struct sj_call {
	void (*fn)(void);
	void *buf;
	long arg;
	void (*jump)(void *buf, long val);
	long jump_val;
	long returns;
	uintptr_t sp_at_call;
	uintptr_t ret_addr;
	uintptr_t sp_first;
	uint64_t rax_first;
	uintptr_t sp_second;
	uint64_t rax_second;
	uint64_t regs_second;
	uint64_t regs_first;
	long jump_returned;
};
_Static_assert(offsetof(struct sj_call, fn) == SJ_OFF_FN, "sj_call");
_Static_assert(offsetof(struct sj_call, buf) == SJ_OFF_BUF, "sj_call");
_Static_assert(offsetof(struct sj_call, arg) == SJ_OFF_ARG, "sj_call");
_Static_assert(offsetof(struct sj_call, jump) == SJ_OFF_JUMP, "sj_call");
_Static_assert(offsetof(struct sj_call, jump_val) == SJ_OFF_JUMP_VAL, "sj_call");
_Static_assert(offsetof(struct sj_call, returns) == SJ_OFF_RETURNS, "sj_call");
_Static_assert(offsetof(struct sj_call, sp_at_call) == SJ_OFF_SP_AT_CALL, "sj_call");
_Static_assert(offsetof(struct sj_call, ret_addr) == SJ_OFF_RET_ADDR, "sj_call");
_Static_assert(offsetof(struct sj_call, sp_first) == SJ_OFF_SP_FIRST, "sj_call");
_Static_assert(offsetof(struct sj_call, rax_first) == SJ_OFF_RAX_FIRST, "sj_call");
_Static_assert(offsetof(struct sj_call, sp_second) == SJ_OFF_SP_SECOND, "sj_call");
_Static_assert(offsetof(struct sj_call, rax_second) == SJ_OFF_RAX_SECOND, "sj_call");
_Static_assert(offsetof(struct sj_call, regs_second) == SJ_OFF_REGS_SECOND, "sj_call");
_Static_assert(offsetof(struct sj_call, regs_first) == SJ_OFF_REGS_FIRST, "sj_call");
_Static_assert(offsetof(struct sj_call, jump_returned) == SJ_OFF_JUMP_RETURNED, "sj_call");
_Static_assert(sizeof(struct sj_call) == SJ_CALL_SIZE, "sj_call");

void sj_layout(struct sj_call *c);
void sj_longjmp_wide(void *buf, long ignored);
uintptr_t sj_caller_sp(void);
uint64_t sj_fs_word_0x30(void);
__attribute__((noreturn)) void sj_shstk_enable_exit(void);

/* ---- which functions the setjmp macros call ---- */

/* What the compiler really calls for `setjmp(env)` and `sigsetjmp(env, s)`: glibc's <setjmp.h> has
 * `#define setjmp(env) _setjmp (env)` and `#define sigsetjmp(env, savemask) __sigsetjmp (env,
 * savemask)`; musl's has `#define setjmp setjmp` and a real sigsetjmp function. The asm helper calls
 * these symbols; test 1 checks the names against the stringified macro expansion. */
#ifdef __GLIBC__
#define SETJMP_TARGET _setjmp
#define SIGSETJMP_TARGET __sigsetjmp
#else
#define SETJMP_TARGET setjmp
#define SIGSETJMP_TARGET sigsetjmp
#endif
#define STR_(...) #__VA_ARGS__
#define STR(...) STR_(__VA_ARGS__)

/* `(setjmp)` suppresses a function-like setjmp macro: the function named setjmp itself (glibc's BSD
 * entry point, sysdeps/x86_64/bsd-setjmp.S, which saves the signal mask). */
#define FN(f) ((void (*)(void))(f))
#define SETJMP_FUNCTION FN((setjmp))

/* ---- the jmp_buf as 8-byte slots ---- */

#define NSLOTS (sizeof(jmp_buf) / 8)
_Static_assert(sizeof(jmp_buf) % 8 == 0, "jmp_buf is a whole number of slots");
_Static_assert(sizeof(sigjmp_buf) == sizeof(jmp_buf), "one buffer type for both");

union slots {
	jmp_buf jb;
	uint64_t w[NSLOTS];
};

/* Untouched slots keep this; a slot written only in its low 4 bytes keeps it in the high ones. */
#define PATTERN 0xa5a5a5a5a5a5a5a5ull

static const char *const REG_NAME[6] = { "rbx", "rbp", "r12", "r13", "r14", "r15" };
static const uint64_t REG_MARK[6] = { SJ_K_RBX, SJ_K_RBP, SJ_K_R12, SJ_K_R13, SJ_K_R14, SJ_K_R15 };

/* What the slots are compared with. */
struct known {
	uintptr_t sp;       /* %rsp of the caller after setjmp returns (= at its call instruction) */
	uintptr_t pc;       /* setjmp's return address */
	uintptr_t buf;      /* the jmp_buf itself */
	uintptr_t fn;       /* the function called, and its name: for a pc inside it */
	const char *fn_name;
	uint64_t mask;      /* the first word of the signal mask at the call */
	uint64_t guard;     /* %fs:0x30, for a glibc-style demangling attempt (never printed). In glibc
			     * it is tcbhead_t.pointer_guard; in musl the word holds struct pthread's
			     * tid and errno_val, but musl stores every slot in the clear, so a musl
			     * slot never gets that far. */
};

static uint64_t ror64(uint64_t v, unsigned r) { return r ? v >> r | v << (64 - r) : v; }

/* glibc's PTR_DEMANGLE on x86_64: ror $0x11, then xor %fs:0x30 (the inverse of PTR_MANGLE, xor then
 * rol $0x11; sysdeps/unix/sysv/linux/x86_64/sysdep.h in 2.36). */
static uint64_t demangle(uint64_t v, uint64_t guard) { return ror64(v, 0x11) ^ guard; }

/* The name of a value in the clear, or NULL. */
static const char *clear_name(uint64_t v, const struct known *k, char *out, size_t n)
{
	for (int i = 0; i < 6; i++)
		if (v == REG_MARK[i])
			return REG_NAME[i];
	if (v == k->sp)
		return "sp";
	if (v == k->pc)
		return "pc";
	if (v == k->buf)
		return "buf";
	if (k->fn && v - k->fn < 256) {
		snprintf(out, n, "%s+0x%x", k->fn_name, (unsigned)(v - k->fn));
		return out;
	}
	return NULL;
}

/* What a slot holds: "-" untouched, a register, "sp", "pc", "buf", "FN+0xNN" (an address in the
 * called function), "sigmask", "0", "int32:N" (an int written over the pattern), "mangled(X)" (X
 * after glibc-style demangling), "other". *mangled is set for the mangled case. */
static void classify(uint64_t v, const struct known *k, char *out, size_t n, int *mangled)
{
	char tmp[64];
	const char *name;
	*mangled = 0;
	if (v == PATTERN) {
		snprintf(out, n, "-");
	} else if ((name = clear_name(v, k, tmp, sizeof tmp))) {
		snprintf(out, n, "%s", name);
	} else if (v == k->mask) {
		snprintf(out, n, "sigmask");
	} else if (v == 0) {
		snprintf(out, n, "0");
	} else if (v >> 32 == PATTERN >> 32 && (uint32_t)v <= 0xffff) {
		snprintf(out, n, "int32:%u", (unsigned)(uint32_t)v);
	} else if ((name = clear_name(demangle(v, k->guard), k, tmp, sizeof tmp))) {
		snprintf(out, n, "mangled(%s)", name);
		*mangled = 1;
	} else {
		snprintf(out, n, "other");
	}
}

static void set_mask(int sig)
{
	sigset_t s;
	sigemptyset(&s);
	if (sig)
		sigaddset(&s, sig);
	sigprocmask(SIG_SETMASK, &s, NULL);
}

/* One call of fn(buf, arg) from sj_layout, with SIGUSR2 (and only it) blocked so that a saved mask
 * is recognisable (mask word 0x800). */
static void run_call(struct sj_call *c, union slots *b, void (*fn)(void), long arg,
		     void (*jump)(void *, long), long jump_val)
{
	memset(c, 0, sizeof *c);
	memset(b, 0xa5, sizeof *b);
	c->fn = fn;
	c->buf = b->jb;
	c->arg = arg;
	c->jump = jump;
	c->jump_val = jump_val;
	set_mask(SIGUSR2);
	sj_layout(c);
	set_mask(0);
}

static void known_for(struct known *k, const struct sj_call *c, const char *fn_name)
{
	k->sp = c->sp_at_call;
	k->pc = c->ret_addr;
	k->buf = (uintptr_t)c->buf;
	k->fn = (uintptr_t)c->fn;
	k->fn_name = fn_name;
	k->mask = (uint64_t)1 << (SIGUSR2 - 1);
	k->guard = sj_fs_word_0x30();
}

/* "0=rbx 1=rbp ... 8=int32:0": every slot that was written, in one line. */
static void layout_line(const union slots *b, const struct known *k, char *out, size_t n)
{
	size_t len = 0;
	out[0] = 0;
	for (size_t i = 0; i < NSLOTS && len < n; i++) {
		char what[80];
		int mangled;
		classify(b->w[i], k, what, sizeof what, &mangled);
		if (strcmp(what, "-") == 0)
			continue;
		len += snprintf(out + len, n - len, "%s%zu=%s", len ? " " : "", i, what);
	}
	if (!out[0])
		snprintf(out, n, "(none)");
}

static const char *regs_list(uint64_t bits, char *out, size_t n)
{
	size_t len = 0;
	out[0] = 0;
	for (int i = 0; i < 6; i++)
		if (bits >> i & 1)
			len += snprintf(out + len, n - len, "%s%s", len ? " " : "", REG_NAME[i]);
	if (!out[0])
		snprintf(out, n, "none");
	return out;
}

/* The value of the saved sp or pc: the slot in the clear, or demangled. */
static int saved_value(const union slots *b, const struct known *k, int slot, const char *want,
		       uint64_t *value, int *mangled)
{
	char tmp[64];
	const char *name = clear_name(b->w[slot], k, tmp, sizeof tmp);
	if (name && strcmp(name, want) == 0) {
		*value = b->w[slot];
		*mangled = 0;
		return 1;
	}
	uint64_t d = demangle(b->w[slot], k->guard);
	name = clear_name(d, k, tmp, sizeof tmp);
	if (name && strcmp(name, want) == 0) {
		*value = d;
		*mangled = 1;
		return 1;
	}
	return 0;
}

static int find_slot(const union slots *b, const struct known *k, const char *want)
{
	uint64_t v;
	int m;
	for (int i = 0; i < 8; i++)
		if (saved_value(b, k, i, want, &v, &m))
			return i;
	return -1;
}

static char reason[512];

/* ---- 1. jmp_buf size and layout ---- */

static void first_name(const char *expansion, char *out, size_t n)
{
	size_t len = strcspn(expansion, " (");
	snprintf(out, n, "%.*s", (int)len, expansion);
}

static const char *t_jmp_buf_layout(void)
{
	char name[64], what[80], line[512];
	struct sj_call c;
	union slots b;
	struct known k;

	ktap_fact("sizeof_jmp_buf", "%zu", sizeof(jmp_buf));
	ktap_fact("sizeof_sigjmp_buf", "%zu", sizeof(sigjmp_buf));

	/* What `setjmp(env)` and `sigsetjmp(env, 1)` expand to, and so which symbols the compiled
	 * program calls. */
	first_name(STR(setjmp(env)), name, sizeof name);
	ktap_fact("setjmp_calls", "%s", name);
	if (strcmp(name, STR(SETJMP_TARGET)) != 0) {
		snprintf(reason, sizeof reason, "setjmp(env) expands to %s, the probe calls %s",
			 STR(setjmp(env)), STR(SETJMP_TARGET));
		return reason;
	}
	first_name(STR(sigsetjmp(env, 1)), name, sizeof name);
	ktap_fact("sigsetjmp_calls", "%s", name);
	if (strcmp(name, STR(SIGSETJMP_TARGET)) != 0) {
		snprintf(reason, sizeof reason, "sigsetjmp(env, 1) expands to %s, the probe calls %s",
			 STR(sigsetjmp(env, 1)), STR(SIGSETJMP_TARGET));
		return reason;
	}

	/* The six callee-saved registers hold markers when the asm helper calls setjmp. */
	run_call(&c, &b, FN(SETJMP_TARGET), 0, NULL, 0);
	known_for(&k, &c, STR(SETJMP_TARGET));
	if (c.returns != 1)
		return "the call did not return exactly once";
	ktap_fact("first_return", "%d", (int)c.rax_first);
	ktap_fact("callee_saved_kept", "%s", c.regs_first == 0x3f ? "yes" : "no");
	for (int i = 0; i < 8; i++) {
		int mangled;
		char key[16];
		classify(b.w[i], &k, what, sizeof what, &mangled);
		snprintf(key, sizeof key, "slot.%d", i);
		ktap_fact(key, "%s", mangled ? "mangled" : what);
	}
	layout_line(&b, &k, line, sizeof line);
	ktap_fact("written", "%s", line);

	/* Saved sp and pc, against the caller's %rsp after setjmp returned (which is its %rsp at the
	 * call instruction), its %rsp at setjmp's entry (8 lower: the return address), and setjmp's
	 * return address. */
	uint64_t v;
	int slot, mangled;
	if ((slot = find_slot(&b, &k, "sp")) < 0)
		return "no slot holds the stack pointer";
	saved_value(&b, &k, slot, "sp", &v, &mangled);
	ktap_fact("sp_minus_caller_sp", "%+lld%s", (long long)(v - c.sp_first), mangled ? " (demangled)" : "");
	ktap_fact("sp_minus_entry_sp", "%+lld%s", (long long)(v - (c.sp_at_call - 8)),
		  mangled ? " (demangled)" : "");
	if ((slot = find_slot(&b, &k, "pc")) < 0)
		return "no slot holds the return address";
	saved_value(&b, &k, slot, "pc", &v, &mangled);
	ktap_fact("pc_minus_return_address", "%+lld%s", (long long)(v - c.ret_addr),
		  mangled ? " (demangled)" : "");

	/* The other entry points, one line each: the function named setjmp (not the macro), and
	 * sigsetjmp without and with the signal mask. */
	run_call(&c, &b, SETJMP_FUNCTION, 0, NULL, 0);
	known_for(&k, &c, "setjmp");
	layout_line(&b, &k, line, sizeof line);
	ktap_fact("layout.setjmp_function", "%s", line);
	for (int save = 0; save <= 1; save++) {
		char key[32];
		run_call(&c, &b, FN(SIGSETJMP_TARGET), save, NULL, 0);
		known_for(&k, &c, "sigsetjmp");
		layout_line(&b, &k, line, sizeof line);
		snprintf(key, sizeof key, "layout.sigsetjmp_%d", save);
		ktap_fact(key, "%s", line);
		if (c.returns != 1 || c.rax_first != 0 || c.regs_first != 0x3f) {
			snprintf(reason, sizeof reason, "sigsetjmp(env, %d): returns %ld, value %llu, registers kept 0x%llx",
				 save, c.returns, (unsigned long long)c.rax_first, (unsigned long long)c.regs_first);
			return reason;
		}
	}
	return NULL;
}

/* ---- 2. pointer mangling ---- */

static const char *t_pointer_mangling(void)
{
	static const char *const WHAT[8] = { "rbx", "rbp", "r12", "r13", "r14", "r15", "sp", "pc" };
	char clear[128] = "", mangled_list[128] = "";
	size_t lc = 0, lm = 0;
	struct sj_call c;
	union slots b;
	struct known k;
	int n_mangled = 0, n_missing = 0;

	run_call(&c, &b, FN(SETJMP_TARGET), 0, NULL, 0);
	known_for(&k, &c, STR(SETJMP_TARGET));
	for (int i = 0; i < 8; i++) {
		int found = 0;
		for (int s = 0; s < 8 && !found; s++) {
			uint64_t v;
			int m;
			if (saved_value(&b, &k, s, WHAT[i], &v, &m)) {
				found = 1;
				if (m) {
					lm += snprintf(mangled_list + lm, sizeof mangled_list - lm, "%s%s", lm ? " " : "", WHAT[i]);
					n_mangled++;
				} else {
					lc += snprintf(clear + lc, sizeof clear - lc, "%s%s", lc ? " " : "", WHAT[i]);
				}
			}
		}
		n_missing += !found;
	}
	ktap_fact("clear", "%s", lc ? clear : "none");
	ktap_fact("mangled", "%s", lm ? mangled_list : "none");
	if (n_missing)
		return "a register, sp or pc is neither in the clear nor mangled with %fs:0x30";
	if (!n_mangled) {
		ktap_fact("demangled_matches", "n/a");
		ktap_fact("rotate_bits", "n/a");
		ktap_fact("xor_only_matches", "n/a");
		return NULL;
	}
	/* Every mangled slot is rol(value ^ guard, R): find R without assuming 0x11, and check that
	 * the xor alone (R = 0) does not do it. */
	int rotate = -1, xor_only = 1;
	for (int r = 0; r < 64 && rotate < 0; r++) {
		int all = 1;
		for (int s = 0; s < 8; s++) {
			char tmp[64];
			const char *cn = clear_name(b.w[s], &k, tmp, sizeof tmp);
			if (cn || b.w[s] == PATTERN)
				continue;
			uint64_t d = ror64(b.w[s], (unsigned)r) ^ k.guard;
			if (!clear_name(d, &k, tmp, sizeof tmp))
				all = 0;
		}
		if (all)
			rotate = r;
		if (r == 0)
			xor_only = all;
	}
	ktap_fact("demangled_matches", "%s", rotate == 0x11 ? "yes" : "no");
	ktap_fact("rotate_bits", "%d", rotate);
	ktap_fact("xor_only_matches", "%s", xor_only ? "yes" : "no");
	ktap_fact("guard_nonzero", "%s", k.guard ? "yes" : "no");
	return NULL;
}

/* ---- 3. return values ---- */

static void jump_longjmp(void *buf, long val) { longjmp(*(jmp_buf *)buf, (int)val); }
static void jump_siglongjmp(void *buf, long val) { siglongjmp(*(sigjmp_buf *)buf, (int)val); }

/* What setjmp returns (as the int C sees) after longjmp(env, val), or after sj_longjmp_wide. */
static int c_setjmp_returns(int val, int wide, int *ok)
{
	jmp_buf env;
	volatile int n = 0, r = -12345;
	volatile int v = val;
	r = setjmp(env);
	if (++n == 1) {
		if (wide)
			sj_longjmp_wide(env, 0);
		else
			longjmp(env, v);
	}
	*ok = n == 2;
	return r;
}

static const char *t_return_values(void)
{
	static const struct {
		const char *key;
		int val;
		int wide;
	} CASES[] = {
		{ "longjmp_0", 0, 0 },
		{ "longjmp_1", 1, 0 },
		{ "longjmp_minus1", -1, 0 },
		{ "longjmp_0x100000000", 0, 1 },
	};
	for (size_t i = 0; i < sizeof CASES / sizeof CASES[0]; i++) {
		int ok;
		int r = c_setjmp_returns(CASES[i].val, CASES[i].wide, &ok);
		if (!ok) {
			snprintf(reason, sizeof reason, "%s: setjmp did not return twice", CASES[i].key);
			return reason;
		}
		ktap_fact(CASES[i].key, "%d", r);
	}
	/* The same through the asm helper, which sees all of %rax after the second return. */
	struct sj_call c;
	union slots b;
	run_call(&c, &b, FN(SETJMP_TARGET), 0, sj_longjmp_wide, 0);
	if (c.returns != 2)
		return "asm: setjmp did not return twice after sj_longjmp_wide";
	ktap_fact("longjmp_0x100000000.rax", "0x%llx", (unsigned long long)c.rax_second);
	run_call(&c, &b, FN(SIGSETJMP_TARGET), 1, jump_siglongjmp, 0);
	if (c.returns != 2)
		return "asm: sigsetjmp did not return twice after siglongjmp";
	ktap_fact("siglongjmp_0", "%d", (int)c.rax_second);
	return NULL;
}

/* ---- 4. signal masks ---- */

static int usr1_blocked(void)
{
	sigset_t s;
	sigprocmask(SIG_BLOCK, NULL, &s);
	return sigismember(&s, SIGUSR1) == 1;
}

static void block_usr1(void)
{
	sigset_t s;
	sigemptyset(&s);
	sigaddset(&s, SIGUSR1);
	sigprocmask(SIG_BLOCK, &s, NULL);
}

static const char *yesno(int b) { return b ? "yes" : "no"; }

/* Set up a context with each entry point, block SIGUSR1, jump back: is it still blocked? */
enum entry { E_SETJMP, E_SETJMP_FUNCTION, E_SIGSETJMP_0, E_SIGSETJMP_1 };

static int blocked_after_jump(enum entry e, int use_siglongjmp, int *ok)
{
	sigjmp_buf env;
	volatile int n = 0;
	set_mask(0);
	switch (e) {
	case E_SETJMP:
		setjmp(env);
		break;
	case E_SETJMP_FUNCTION:
		(setjmp)(env);
		break;
	case E_SIGSETJMP_0:
		sigsetjmp(env, 0);
		break;
	case E_SIGSETJMP_1:
		sigsetjmp(env, 1);
		break;
	}
	if (++n == 1) {
		block_usr1();
		if (use_siglongjmp)
			siglongjmp(env, 1);
		longjmp(env, 1);
	}
	*ok = n == 2;
	int blocked = usr1_blocked();
	set_mask(0);
	return blocked;
}

static jmp_buf handler_env;
static sigjmp_buf handler_senv;
static volatile sig_atomic_t handler_hits, handler_mode;

static void on_usr1(int sig)
{
	(void)sig;
	handler_hits++;
	int mode = handler_mode;
	handler_mode = 0;
	if (mode == 1)
		longjmp(handler_env, 1);
	if (mode == 2)
		siglongjmp(handler_senv, 1);
}

/* Leave the handler by longjmp (mode 1, context from setjmp) or siglongjmp (mode 2, context from
 * sigsetjmp(env, 1)). The kernel blocked SIGUSR1 while the handler ran; no sigreturn restores the
 * mask, so only a jump that restores it unblocks it. Then raise SIGUSR1 again. */
static const char *handler_case(int mode, const char *prefix)
{
	struct sigaction sa, old;
	volatile int n = 0;
	char key[64];

	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_usr1;
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGUSR1, &sa, &old) != 0)
		return "sigaction failed";
	set_mask(0);
	handler_hits = 0;
	if (mode == 1)
		setjmp(handler_env);
	else
		sigsetjmp(handler_senv, 1);
	if (++n == 1) {
		handler_mode = mode;
		raise(SIGUSR1);
		/* Only if the handler returned. */
		set_mask(0);
		sigaction(SIGUSR1, &old, NULL);
		return "the handler did not jump";
	}
	int blocked = usr1_blocked();
	raise(SIGUSR1);
	int hits = handler_hits;
	sigset_t pend;
	sigpending(&pend);
	int pending = sigismember(&pend, SIGUSR1) == 1;

	/* Discard a pending SIGUSR1 (setting SIG_IGN does), then restore everything. */
	signal(SIGUSR1, SIG_IGN);
	set_mask(0);
	sigaction(SIGUSR1, &old, NULL);

	snprintf(key, sizeof key, "%s.blocked_after", prefix);
	ktap_fact(key, "%s", yesno(blocked));
	snprintf(key, sizeof key, "%s.second_raise", prefix);
	ktap_fact(key, "%s", hits == 2 ? "delivered" : pending ? "pending" : "lost");
	return NULL;
}

static const char *t_signal_masks(void)
{
	static const struct {
		const char *key;
		enum entry e;
		int sig;
	} CASES[] = {
		{ "setjmp.longjmp.blocked_after", E_SETJMP, 0 },
		{ "setjmp_function.longjmp.blocked_after", E_SETJMP_FUNCTION, 0 },
		{ "sigsetjmp_0.siglongjmp.blocked_after", E_SIGSETJMP_0, 1 },
		{ "sigsetjmp_1.siglongjmp.blocked_after", E_SIGSETJMP_1, 1 },
		{ "sigsetjmp_1.longjmp.blocked_after", E_SIGSETJMP_1, 0 },
	};
	for (size_t i = 0; i < sizeof CASES / sizeof CASES[0]; i++) {
		int ok;
		int blocked = blocked_after_jump(CASES[i].e, CASES[i].sig, &ok);
		if (!ok) {
			snprintf(reason, sizeof reason, "%s: no second return", CASES[i].key);
			return reason;
		}
		ktap_fact(CASES[i].key, "%s", yesno(blocked));
	}
	const char *r = handler_case(1, "handler.setjmp");
	if (!r)
		r = handler_case(2, "handler.sigsetjmp_1");
	return r;
}

/* ---- 5. locals ---- */

/* Out of line, so that the compiler cannot see that the jump never returns here. */
__attribute__((noinline, noclone)) static void jump_back(jmp_buf env) { longjmp(env, 1); }

static const char *t_locals(void)
{
	jmp_buf env;
	volatile int vol = 1;
	int plain = 1;
	volatile int n = 0;

	if (setjmp(env) == 0) {
		n = 1;
		vol = 2;
		plain = 2;
		jump_back(env);
	}
	if (n != 1)
		return "no second return";
	/* C11 7.13.2.1p3: a non-volatile automatic object changed between setjmp and longjmp has an
	 * indeterminate value afterwards. `new` or `old` is what this compiler made of it at -O1. */
	ktap_fact("volatile", "%s", vol == 2 ? "new" : vol == 1 ? "old" : "other");
	ktap_fact("nonvolatile_unspecified", "%s", plain == 2 ? "new" : plain == 1 ? "old" : "other");
	return vol == 2 ? NULL : "the volatile local lost its new value";
}

/* ---- 6. longjmp across frames ---- */

static jmp_buf deep_env;
static volatile int frames;

__attribute__((noinline, noclone)) static void dive(int left, int depth)
{
	frames++;
	if (left <= 0)
		return; /* not reached; a returning path keeps -Winfinite-recursion quiet */
	if (left == 1)
		longjmp(deep_env, depth);
	dive(left - 1, depth);
	__asm__ volatile("" ::: "memory"); /* not a tail call: each level keeps its frame */
}

static const char *deep_case(int depth)
{
	volatile int n = 0, r = 0;
	volatile uintptr_t sp[2] = { 0, 0 };
	volatile int d = depth;
	char key[48];

	frames = 0;
	r = setjmp(deep_env);
	sp[n] = sj_caller_sp();
	if (++n == 1)
		dive(d, d);
	if (n != 2)
		return "no second return";
	snprintf(key, sizeof key, "depth_%d.returned", d);
	ktap_fact(key, "%d", r);
	snprintf(key, sizeof key, "depth_%d.frames", d);
	ktap_fact(key, "%d", frames);
	snprintf(key, sizeof key, "depth_%d.sp_after_minus_sp_at_setjmp", d);
	ktap_fact(key, "%+lld", (long long)(sp[1] - sp[0]));
	return NULL;
}

static const char *t_longjmp_frames(void)
{
	const char *r = deep_case(3);
	if (!r)
		r = deep_case(100);
	if (r)
		return r;

	/* Through the asm helper: the callee-saved registers are overwritten before the jump, so the
	 * markers after it come from the jmp_buf. */
	static const struct {
		const char *prefix;
		int sigsetjmp_1;
	} ENTRIES[] = { { "asm.setjmp", 0 }, { "asm.sigsetjmp_1", 1 } };
	for (size_t i = 0; i < 2; i++) {
		struct sj_call c;
		union slots b;
		char key[64], regs[64];
		if (ENTRIES[i].sigsetjmp_1)
			run_call(&c, &b, FN(SIGSETJMP_TARGET), 1, jump_longjmp, 7);
		else
			run_call(&c, &b, FN(SETJMP_TARGET), 0, jump_longjmp, 7);
		if (c.returns != 2 || c.jump_returned) {
			snprintf(reason, sizeof reason, "%s: the jump did not come back", ENTRIES[i].prefix);
			return reason;
		}
		snprintf(key, sizeof key, "%s.restored", ENTRIES[i].prefix);
		ktap_fact(key, "%s", regs_list(c.regs_second, regs, sizeof regs));
		snprintf(key, sizeof key, "%s.returned", ENTRIES[i].prefix);
		ktap_fact(key, "%d", (int)c.rax_second);
		snprintf(key, sizeof key, "%s.sp_after_minus_sp_at_setjmp", ENTRIES[i].prefix);
		ktap_fact(key, "%+lld", (long long)(c.sp_second - c.sp_first));
	}
	return NULL;
}

/* ---- 7. the kernel's side: user shadow stacks ---- */

/* An errno value's name; 0, no error, is KTAP_OK. */
static const char *errno_name(int e)
{
	static char other[32];
	switch (e) {
	case 0: return KTAP_OK;
	case EPERM: return "EPERM";
	case ENOENT: return "ENOENT";
	case EFAULT: return "EFAULT";
	case EBUSY: return "EBUSY";
	case EINVAL: return "EINVAL";
	case ENOMEM: return "ENOMEM";
	case ENOSYS: return "ENOSYS";
	case EOPNOTSUPP: return "EOPNOTSUPP";
	}
	snprintf(other, sizeof other, "errno %d", e);
	return other;
}

static const char *t_kernel_shadow_stack(void)
{
	char buf[8192];
	int fd = open("/proc/self/status", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return "cannot open /proc/self/status";
	size_t len = 0;
	ssize_t got;
	while (len < sizeof buf - 1 && (got = read(fd, buf + len, sizeof buf - 1 - len)) > 0)
		len += (size_t)got;
	close(fd);
	buf[len] = 0;

	static const struct {
		const char *field;
		const char *key;
	} FIELDS[] = {
		{ "x86_Thread_features:", "status.x86_thread_features" },
		{ "x86_Thread_features_locked:", "status.x86_thread_features_locked" },
	};
	for (size_t i = 0; i < 2; i++) {
		const char *value = "absent";
		char line[256];
		for (char *p = buf; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL) {
			size_t fl = strlen(FIELDS[i].field);
			if (strncmp(p, FIELDS[i].field, fl) != 0)
				continue;
			const char *v = p + fl;
			v += strspn(v, " \t");
			size_t vl = strcspn(v, "\n");
			while (vl && (v[vl - 1] == ' ' || v[vl - 1] == '\t'))
				vl--;
			snprintf(line, sizeof line, "%.*s", (int)vl, v);
			value = vl ? line : "(empty)";
			break;
		}
		ktap_fact(FIELDS[i].key, "%s", value);
	}

	/* ARCH_SHSTK_STATUS (0x5005) writes the enabled features to *arg2. A kernel with the ARCH_SHSTK_*
	 * calls (6.6 on, CONFIG_X86_USER_SHADOW_STACK) answers it whatever the CPU (arch/x86/kernel/shstk.c,
	 * shstk_prctl: put_user, so 0 or EFAULT); EINVAL comes only from a kernel without them (the
	 * default case of do_arch_prctl_64, or the !CONFIG_X86_USER_SHADOW_STACK stub), for which neither
	 * call of this test exists: the facts say so rather than give EINVAL as the answer. */
	unsigned long features = 0;
	errno = 0;
	long r = syscall(SYS_arch_prctl, 0x5005, &features);
	int shstk_calls_exist = !(r != 0 && errno == EINVAL);
	if (r == 0)
		ktap_fact("arch_prctl_shstk_status", KTAP_OK " (features 0x%lx)", features);
	else if (!shstk_calls_exist)
		ktap_fact("arch_prctl_shstk_status", "not applicable: EINVAL");
	else
		ktap_fact("arch_prctl_shstk_status", "%s", errno_name(errno));

	/* ARCH_SHSTK_ENABLE (0x5001) of ARCH_SHSTK_SHSTK (1), in a child (see sj_shstk_enable_exit). */
	pid_t pid = fork();
	if (pid < 0)
		return "fork failed";
	if (pid == 0)
		sj_shstk_enable_exit();
	int status;
	if (waitpid(pid, &status, 0) != pid)
		return "waitpid failed";
	if (WIFEXITED(status) && !shstk_calls_exist && WEXITSTATUS(status) == EINVAL)
		ktap_fact("arch_prctl_shstk_enable", "not applicable: EINVAL");
	else if (WIFEXITED(status))
		ktap_fact("arch_prctl_shstk_enable", "%s", errno_name(WEXITSTATUS(status)));
	else {
		char end[64];
		ktap_fact("arch_prctl_shstk_enable", "%s", ktap_child_end(status, end, sizeof end));
	}
	return NULL;
}

/* ---- main ---- */

static const struct {
	const char *name;
	const char *(*run)(void);
} TESTS[] = {
	{ "jmp_buf_layout", t_jmp_buf_layout },
	{ "pointer_mangling", t_pointer_mangling },
	{ "return_values", t_return_values },
	{ "signal_masks", t_signal_masks },
	{ "locals", t_locals },
	{ "longjmp_frames", t_longjmp_frames },
	{ "kernel_shadow_stack", t_kernel_shadow_stack },
};

int main(void)
{
	int failed = 0;
	ktap_begin((int)(sizeof TESTS / sizeof TESTS[0]));
	for (size_t i = 0; i < sizeof TESTS / sizeof TESTS[0]; i++) {
		const char *why = TESTS[i].run();
		if (why) {
			failed = 1;
			ktap_not_ok(TESTS[i].name, why);
		} else {
			ktap_ok(TESTS[i].name);
		}
	}
	return failed;
}
