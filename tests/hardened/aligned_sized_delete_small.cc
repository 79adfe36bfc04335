// Models hardened_malloc's test/aligned_sized_delete_small.cc: an object aligned to 64 bytes (24 bytes of data,
// sizeof 64) made by new, then given back with operator delete(p, sizeof, alignment), the right size and
// alignment. Expected: exit 0.
#include <new>

struct alignas(64) Line {
	char bytes[24];
};

int main()
{
	Line *p = new Line;
	::operator delete(p, sizeof(Line), std::align_val_t(alignof(Line)));
	return 0;
}
