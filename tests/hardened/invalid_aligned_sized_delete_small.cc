// Models hardened_malloc's test/invalid_aligned_sized_delete_small.cc: as aligned_sized_delete_small, but the
// delete is told 64 bytes more than the object's size (128 for 64). Expected: size mismatch reported, abort.
#include <new>

struct alignas(64) Line {
	char bytes[24];
};

int main()
{
	Line *p = new Line;
	::operator delete(p, sizeof(Line) + 64, std::align_val_t(alignof(Line)));
	return 0;
}
