/* test_faults_rlimit: tests/malloc_faults_rlimit.c on the os_* API, linked with libosmem.a (the classic
 * algorithm): four threads under RLIMIT_AS and RLIMIT_DATA until failure, then the limit raised again. */
#define USE_OS_API
#include "malloc_faults_rlimit.c"
