/* Shared by setjmp.c and setjmp_asm.S (the .S file goes through the C preprocessor): the marker
 * values the asm helpers load into the callee-saved registers, and the layout of struct sj_call,
 * which setjmp.c checks against these offsets with _Static_assert. */
#ifndef SJ_SHARED_H
#define SJ_SHARED_H

/* Markers: below 2^63 (no suffix needed in C or as), unlike any address or small integer. */
#define SJ_K_RBX 0x1b1b1b1b1b1b1b1b
#define SJ_K_RBP 0x2b2b2b2b2b2b2b2b
#define SJ_K_R12 0x3c3c3c3c3c3c3c3c
#define SJ_K_R13 0x4d4d4d4d4d4d4d4d
#define SJ_K_R14 0x5e5e5e5e5e5e5e5e
#define SJ_K_R15 0x6f6f6f6f6f6f6f6f

/* struct sj_call (setjmp.c): one call of a setjmp-like function from sj_layout. */
#define SJ_OFF_FN 0           /* in: the setjmp-like function */
#define SJ_OFF_BUF 8          /* in: its first argument, the jmp_buf */
#define SJ_OFF_ARG 16         /* in: its second argument (savemask for sigsetjmp) */
#define SJ_OFF_JUMP 24        /* in: called with (buf, jump_val) after the first return, or 0 */
#define SJ_OFF_JUMP_VAL 32    /* in */
#define SJ_OFF_RETURNS 40     /* out: how many times the call returned */
#define SJ_OFF_SP_AT_CALL 48  /* out: %rsp at the call instruction (= after the callee returns) */
#define SJ_OFF_RET_ADDR 56    /* out: the call's return address */
#define SJ_OFF_SP_FIRST 64    /* out: %rsp after the first return */
#define SJ_OFF_RAX_FIRST 72   /* out: %rax after the first return */
#define SJ_OFF_SP_SECOND 80   /* out: %rsp after the second return (through longjmp) */
#define SJ_OFF_RAX_SECOND 88  /* out: %rax after the second return */
#define SJ_OFF_REGS_SECOND 96 /* out: bit i set: register i (rbx rbp r12 r13 r14 r15) held its marker */
#define SJ_OFF_REGS_FIRST 104 /* out: the same after the first return */
#define SJ_OFF_JUMP_RETURNED 112 /* out: 1 if the jump function returned (it must not) */
#define SJ_CALL_SIZE 120

#endif
