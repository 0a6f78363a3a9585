/* What a JIT (Julia's, say) relies on: code mapped read-only and executable, patched through
 * /proc/self/mem. FOLL_FORCE lets that write through; proc_mem.force_override=never stops it.
 * Speaks KTAP on stdout, one fact per line: `# fact: KEY = VALUE`. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

int main(void) {
    printf("KTAP version 1\n1..1\n");
    unsigned char *code = mmap(0, 4096, PROT_READ | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    int fd = open("/proc/self/mem", O_RDWR);
    if (code == MAP_FAILED || fd < 0) {
        printf("not ok 1 patch_read_only_code # setup: %s\n", strerror(errno));
        return 1;
    }
    unsigned char ret = 0xc3; /* x86-64 `ret` */
    ssize_t written = pwrite(fd, &ret, 1, (off_t)(unsigned long)code);
    printf("# fact: write = %s\n", written == 1 ? "ok" : strerror(errno));
    printf("# fact: byte_after = 0x%02x\n", code[0]);
    if (written == 1) {
        ((void (*)(void))code)(); /* runs the patched `ret` */
        printf("# fact: call = returned\n");
    }
    printf("ok 1 patch_read_only_code\n");
    return 0;
}
