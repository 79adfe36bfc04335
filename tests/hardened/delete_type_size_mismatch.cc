// Models hardened_malloc's test/delete_type_size_mismatch.cc: a `new char` deleted through a pointer to a 32-byte
// struct, so the sized operator delete is told 32 bytes for a 1-byte object (built with -fsized-deallocation).
// Expected: the delete reports the size mismatch and aborts.
#include <cstdint>

struct Wide {
	std::uint64_t w[4];
};

int main()
{
	char *one = new char;
	Wide *volatile wrong = reinterpret_cast<Wide *>(one);
	delete wrong;
	return 0;
}
