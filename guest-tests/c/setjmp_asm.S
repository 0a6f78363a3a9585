/* Assembly helpers of the setjmp probe (setjmp.c): what C cannot do — put known values in the
 * callee-saved registers around a call to setjmp, see %rsp and the return address of that call, pass
 * a 64-bit value where the prototype says int, read the TCB, and issue a system call with no return
 * in between. GNU as, AT&T syntax, x86_64 System V ABI. */
#include "sj_shared.h"

	.text

/* Set bit \bit of %r8 if \reg holds \k. Clobbers %rdx. */
.macro SJ_CHECK reg, k, bit
	movabs $\k, %rdx
	cmp %rdx, \reg
	jne 1f
	or $\bit, %r8
1:
.endm

.macro SJ_CHECK_ALL
	xor %r8d, %r8d
	SJ_CHECK %rbx, SJ_K_RBX, 1
	SJ_CHECK %rbp, SJ_K_RBP, 2
	SJ_CHECK %r12, SJ_K_R12, 4
	SJ_CHECK %r13, SJ_K_R13, 8
	SJ_CHECK %r14, SJ_K_R14, 16
	SJ_CHECK %r15, SJ_K_R15, 32
.endm

/* void sj_layout(struct sj_call *c)
 *
 * Loads the markers into rbx, rbp, r12-r15, calls c->fn(c->buf, c->arg) and records %rsp before the
 * call, the return address, and after each return %rsp, %rax and which registers hold their markers.
 * After the first return, if c->jump is set, overwrites the six registers with other values and calls
 * c->jump(c->buf, c->jump_val), which is expected to longjmp back here: the second return. Our frame
 * (the saved registers and c at 0(%rsp)) is above %rsp at the call, so it survives the jump. */
	.globl sj_layout
	.type sj_layout, @function
sj_layout:
	push %rbx
	push %rbp
	push %r12
	push %r13
	push %r14
	push %r15
	push %rdi			/* c; %rsp is now 16-byte aligned, as a call needs */
	movabs $SJ_K_RBX, %rbx
	movabs $SJ_K_RBP, %rbp
	movabs $SJ_K_R12, %r12
	movabs $SJ_K_R13, %r13
	movabs $SJ_K_R14, %r14
	movabs $SJ_K_R15, %r15
	mov %rdi, %rax
	mov SJ_OFF_BUF(%rax), %rdi
	mov SJ_OFF_ARG(%rax), %rsi
	mov %rsp, SJ_OFF_SP_AT_CALL(%rax)
	lea .Lsj_ret(%rip), %rcx
	mov %rcx, SJ_OFF_RET_ADDR(%rax)
	call *SJ_OFF_FN(%rax)
.Lsj_ret:
	mov (%rsp), %rcx
	incq SJ_OFF_RETURNS(%rcx)
	SJ_CHECK_ALL
	cmpq $1, SJ_OFF_RETURNS(%rcx)
	jne .Lsj_second
	mov %rsp, SJ_OFF_SP_FIRST(%rcx)
	mov %rax, SJ_OFF_RAX_FIRST(%rcx)
	mov %r8, SJ_OFF_REGS_FIRST(%rcx)
	cmpq $0, SJ_OFF_JUMP(%rcx)
	je .Lsj_done
	/* Scramble: after the jump, the markers can only have come back from the jmp_buf. */
	movabs $0x0dead00000000001, %rbx
	movabs $0x0dead00000000002, %rbp
	movabs $0x0dead00000000003, %r12
	movabs $0x0dead00000000004, %r13
	movabs $0x0dead00000000005, %r14
	movabs $0x0dead00000000006, %r15
	mov SJ_OFF_BUF(%rcx), %rdi
	mov SJ_OFF_JUMP_VAL(%rcx), %rsi
	call *SJ_OFF_JUMP(%rcx)
	mov (%rsp), %rcx
	movq $1, SJ_OFF_JUMP_RETURNED(%rcx)
	jmp .Lsj_done
.Lsj_second:
	mov %rsp, SJ_OFF_SP_SECOND(%rcx)
	mov %rax, SJ_OFF_RAX_SECOND(%rcx)
	mov %r8, SJ_OFF_REGS_SECOND(%rcx)
.Lsj_done:
	pop %rdi
	pop %r15
	pop %r14
	pop %r13
	pop %r12
	pop %rbp
	pop %rbx
	ret
	.size sj_layout, .-sj_layout

/* void sj_longjmp_wide(void *buf, long ignored): longjmp(buf, val) with %rsi = 0x100000000, a value
 * whose low 32 bits are 0. The C prototype of longjmp takes an int, so this is what a caller passing
 * a 64-bit value through a mismatched declaration would do. Tail call: longjmp sees our caller's
 * frame, as if called directly. */
	.globl sj_longjmp_wide
	.type sj_longjmp_wide, @function
sj_longjmp_wide:
	movabs $0x100000000, %rsi
	jmp longjmp
	.size sj_longjmp_wide, .-sj_longjmp_wide

/* uintptr_t sj_caller_sp(void): the caller's %rsp at the call (our %rsp + 8, past the return address). */
	.globl sj_caller_sp
	.type sj_caller_sp, @function
sj_caller_sp:
	lea 8(%rsp), %rax
	ret
	.size sj_caller_sp, .-sj_caller_sp

/* uint64_t sj_fs_word_0x30(void): the 8 bytes at %fs:0x30. In glibc that is tcbhead_t.pointer_guard
 * (POINTER_GUARD in sysdeps/x86_64/nptl/tcb-offsets.sym), the key of PTR_MANGLE. */
	.globl sj_fs_word_0x30
	.type sj_fs_word_0x30, @function
sj_fs_word_0x30:
	mov %fs:0x30, %rax
	ret
	.size sj_fs_word_0x30, .-sj_fs_word_0x30

/* noreturn void sj_shstk_enable_exit(void): arch_prctl(ARCH_SHSTK_ENABLE, ARCH_SHSTK_SHSTK), then
 * exit_group(-result & 0xff) at once. Run in a child: if the kernel did enable the shadow stack, the
 * next `ret` would find an empty shadow stack and fault, so there is none. */
	.globl sj_shstk_enable_exit
	.type sj_shstk_enable_exit, @function
sj_shstk_enable_exit:
	mov $158, %eax			/* __NR_arch_prctl */
	mov $0x5001, %edi		/* ARCH_SHSTK_ENABLE */
	mov $1, %esi			/* ARCH_SHSTK_SHSTK */
	syscall
	neg %rax
	mov %eax, %edi
	and $0xff, %edi
	mov $231, %eax			/* __NR_exit_group */
	syscall
	hlt
	.size sj_shstk_enable_exit, .-sj_shstk_enable_exit

	.section .note.GNU-stack, "", @progbits
