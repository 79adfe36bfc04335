// Models hardened_malloc's test/aligned_sized_delete_small_min_align.c: a block of 0 bytes at the smallest
// alignment (16), given back with a sized, aligned free of size 0 and alignment 16. hardened_malloc's program uses
// posix_memalign and C23's free_aligned_sized, which glibc 2.36 lacks (osmem exports it, but this program runs on
// glibc too; tests/malloc_free_sized.c tests osmem's); the nearest pair both serve is C++'s:
// operator new(0, align_val_t(16)) and operator delete(p, 0, align_val_t(16)). Expected: exit 0.
#include <new>

int main()
{
	void *p = ::operator new(0, std::align_val_t(16));
	::operator delete(p, 0, std::align_val_t(16));
	return 0;
}
