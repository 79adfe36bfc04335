// Models hardened_malloc's test/aligned_sized_delete_large.cc: an object aligned to 8 KiB with 9000 bytes of data
// (sizeof 16384) made by new, then given back with operator delete(p, sizeof, alignment). Expected: exit 0.
#include <new>

struct alignas(8192) Pages {
	char bytes[9000];
};

int main()
{
	Pages *p = new Pages;
	::operator delete(p, sizeof(Pages), std::align_val_t(alignof(Pages)));
	return 0;
}
