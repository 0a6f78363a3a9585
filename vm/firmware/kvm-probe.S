/*
 * kvm-probe.rom: a 64 KiB "BIOS" that proves an accelerator can run a guest into 64-bit long mode.
 *
 * Why: on some hosts /dev/kvm opens and KVM_CREATE_VM succeeds, yet a guest hangs as soon as it enables
 * paging. Checking that /dev/kvm exists is not enough; ksnap boots this image with a short timeout and
 * trusts KVM only if QEMU exits through isa-debug-exit with status 3.
 *
 * Rebuild (a unit test checks the committed .rom matches):
 *   as --64 -o kvm-probe.o kvm-probe.S && objcopy -O binary kvm-probe.o kvm-probe.rom
 *
 * The image is mapped at 0xFFFF0000; the CPU starts at 0xFFFFFFF0 in real mode.
 */
	.code16
	.org 0
start16:
	cli
	/* lgdt from ROM: CS base is 0xFFFF0000, so cs:gdt_ptr is inside the image */
	lgdtl %cs:(gdt_ptr - start16)
	movl %cr0, %eax
	orb $1, %al
	movl %eax, %cr0
	ljmpl $0x08, $(0xFFFF0000 + pm32 - start16)

	.code32
pm32:
	movw $0x10, %ax
	movw %ax, %ds
	movw %ax, %es
	movw %ax, %ss
	/* page tables at 0x1000 (PML4), 0x2000 (PDPT), 0x3000 (PD): identity-map the top 2 MiB, where this code runs */
	movl $0x1000, %edi
	xorl %eax, %eax
	movl $(3*4096/4), %ecx
	rep stosl
	movl $0x2003, 0x1000
	movl $0x3003, 0x2018     /* PDPT[3]: 3..4 GiB */
	movl $0xFFE00083, 0x3FF8 /* PD[511]: the 2 MiB page holding this ROM */
	movl $0x1000, %eax
	movl %eax, %cr3
	movl %cr4, %eax
	orl $0x20, %eax          /* PAE */
	movl %eax, %cr4
	movl $0xC0000080, %ecx   /* EFER */
	rdmsr
	orl $0x100, %eax         /* LME */
	wrmsr
	movl %cr0, %eax
	orl $0x80000000, %eax    /* PG */
	movl %eax, %cr0
	ljmpl $0x18, $(0xFFFF0000 + lm64 - start16)

	.code64
lm64:
	movb $1, %al
	outb %al, $0xf4          /* isa-debug-exit: QEMU exits with status (1<<1)|1 = 3 */
1:	hlt
	jmp 1b

	.p2align 3
gdt:
	.quad 0
	.quad 0x00CF9A000000FFFF /* 0x08: 32-bit code */
	.quad 0x00CF92000000FFFF /* 0x10: data */
	.quad 0x00AF9A000000FFFF /* 0x18: 64-bit code */
gdt_ptr:
	.word gdt_ptr - gdt - 1
	.long 0xFFFF0000 + gdt - start16

	.org 0xFFF0
reset:
	.code16
	jmp start16
	.org 0x10000
