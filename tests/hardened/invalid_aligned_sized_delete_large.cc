// Models hardened_malloc's test/invalid_aligned_sized_delete_large.cc: as aligned_sized_delete_large, but the
// delete is told 10 bytes less than the object's size. Expected: size mismatch reported, abort.
#include <new>

struct alignas(8192) Pages {
	char bytes[9000];
};

int main()
{
	Pages *p = new Pages;
	::operator delete(p, sizeof(Pages) - 10, std::align_val_t(alignof(Pages)));
	return 0;
}
