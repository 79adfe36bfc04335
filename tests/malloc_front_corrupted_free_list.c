/* malloc_front_corrupted_free_list: a program that writes into a freed slot (use after free) or frees twice.
 *
 * Hazard: the front layer keeps its free lists inside free slots. A link overwritten by the program must not
 * send malloc to an arbitrary address: links are encoded with a per-process secret and every popped link must
 * decode to a slot of the same page, else `osmem: malloc(): corrupted free list 0x<slot>` and abort. The same
 * check guards the list of remote frees the owner collects. A second free of a slot is reported as a double free
 * (the freed mark), also when another thread made the first free. Each case runs in a forked child; the parent
 * requires SIGABRT and the exact message with the slot's address.
 * Prints `PASS front/corrupted_free_list/<case>` or `FAIL ...: why`. */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include "test_util.h"

static void *(*volatile v_malloc)(size_t) = malloc;
static void (*volatile v_free)(void *) = free;

static void *victim;

/* The slot the report must name, told to the parent before the bad call (the child allocated it). */
static void announce(void *p)
{
	victim = p;
	dprintf(2, "VICTIM %p\n", p);
}

/* 1: the freed slot's link overwritten with bytes; the next malloc of its class pops it and checks its link */
static void overwrite_link(void)
{
	announce(v_malloc(48));
	v_free(victim);
	memset(victim, 0x41, 8);
	(void)v_malloc(48);
}

/* 2: the link replaced by a plain pointer to another slot (what an attacker would write without the secret) */
static void plain_pointer(void)
{
	char *a = v_malloc(64), *b = v_malloc(64);
	announce(a);
	v_free(a);
	memcpy(a, &b, sizeof b);
	(void)v_malloc(64);
}

static void *free_remote(void *p)
{
	v_free(p);
	return NULL;
}

/* 3: a slot freed by another thread (onto the owner's thread-free list), then overwritten; the owner collects
 * the list when its page runs out of free slots */
static void remote_list(void)
{
	announce(v_malloc(1024));
	pthread_t t;
	pthread_create(&t, NULL, free_remote, victim);
	pthread_join(t, NULL);
	memset(victim, 0x42, 8);
	for (int i = 0; i < 200; i++) /* a 64 KiB page holds 64 slots of 1 KiB */
		(void)v_malloc(1024);
}

/* 4: double free, both by this thread */
static void double_free_local(void)
{
	announce(v_malloc(16));
	v_free(victim);
	v_free(victim);
}

/* 5: double free, the first by another thread */
static void double_free_remote(void)
{
	announce(v_malloc(200));
	pthread_t t;
	pthread_create(&t, NULL, free_remote, victim);
	pthread_join(t, NULL);
	v_free(victim);
}

/* 5b: the same while the other thread lives on: its free sits in its remote batch (front.c, remote_batch), on
 * none of the page's lists, so the owner's second free must be caught by the freed mark alone (it was accepted,
 * and the slot later handed out twice, when only the page's lists were searched) */
static volatile int remote_freed;
static void *free_remote_and_stay(void *p)
{
	v_free(p);
	__atomic_store_n(&remote_freed, 1, __ATOMIC_RELEASE);
	for (;;)
		pause();
	return NULL;
}

static void double_free_remote_batched(void)
{
	announce(v_malloc(200));
	pthread_t t;
	pthread_create(&t, NULL, free_remote_and_stay, victim);
	while (!__atomic_load_n(&remote_freed, __ATOMIC_ACQUIRE))
		sched_yield();
	v_free(victim);
	_exit(0);
}

/* 6: glibc's tst-safe-linking (fastbin_consolidate): the slot freed last overwritten, then a LARGE request, which
 * the core serves: the heads of this thread's free lists are checked on that path too */
static void overwrite_then_large(void)
{
	void *a = v_malloc(32), *b = v_malloc(32);
	announce(v_malloc(32));
	v_free(a);
	v_free(b);
	v_free(victim);
	memset(victim, 0x5a, 32);
	(void)v_malloc(256 * 1024);
}

/* Slots of 16 bytes, more than the thread cache of their class holds (64): freed all, they overflow it, and its
 * older half goes back to the pages. */
#define MANY_SLOTS 200
static void *slots16[MANY_SLOTS];
static void take_slots16(void)
{
	for (int i = 0; i < MANY_SLOTS; i++)
		slots16[i] = v_malloc(16);
}
static void free_slots16(void)
{
	for (int i = 0; i < MANY_SLOTS; i++)
		v_free(slots16[i]);
}

/* 7: a link overwritten deep in the thread cache (front.c, tc_release): the slot freed first, then enough frees of
 * its class to overflow the cache, whose older half goes back to the pages through a walk of its links */
static void overwrite_link_thread_cache_overflow(void)
{
	take_slots16();
	announce(v_malloc(16));
	v_free(victim);
	memset(victim, 0x41, 8);
	free_slots16();
}

/* 8: the freed mark (the slot's second word) overwritten, then the slot freed again: the mark can no longer tell
 * the second free from a first, so the slot sits twice in the thread's cache. malloc checks the first word of the
 * slot it takes (internal.h, tc_slot_marked): the first malloc takes the slot (its first word still marked) and
 * clears it, the second finds the first word cleared and reports, instead of handing the slot out twice */
static void double_free_after_mark_overwritten(void)
{
	announce(v_malloc(48));
	v_free(victim);
	memset((char *)victim + 8, 0x43, 8);
	v_free(victim);
	void *a = v_malloc(48), *b = v_malloc(48);
	if (a == b)
		dprintf(2, "the slot was handed out twice\n");
}

/* 9: a link overwritten on its page's own free list, not in the thread cache: 200 slots freed, so that the cache
 * gives its older half back to the page, the slot freed first among them; malloc's fast path
 * pops the page's list and must check each popped link (internal.h, front_malloc_with), else it follows the
 * overwritten link to a wild address (SIGSEGV in malloc, or a slot handed out anywhere the program chose) */
static void overwrite_link_page_free_list(void)
{
	take_slots16();
	announce(slots16[0]);
	free_slots16();
	memset(victim, 0x41, 8);
	for (int i = 0; i < 1000; i++)
		(void)v_malloc(16);
}

static const struct { const char *name; void (*run)(void); const char *msg; } cases[] = {
	{ "double_free_after_mark_overwritten", double_free_after_mark_overwritten,
	  "osmem: malloc(): corrupted free list" },
	{ "overwritten_link_thread_cache_overflow", overwrite_link_thread_cache_overflow,
	  "osmem: malloc(): corrupted free list" },
	{ "overwritten_link_then_large_request", overwrite_then_large, "osmem: malloc(): corrupted free list" },
	{ "overwritten_link", overwrite_link, "osmem: malloc(): corrupted free list" },
	{ "overwritten_link_page_free_list", overwrite_link_page_free_list, "osmem: malloc(): corrupted free list" },
	{ "plain_pointer_link", plain_pointer, "osmem: malloc(): corrupted free list" },
	{ "remote_list_link", remote_list, "osmem: malloc(): corrupted free list" },
	{ "double_free_local", double_free_local, "osmem: free(): double free" },
	{ "double_free_remote", double_free_remote, "osmem: free(): double free" },
	{ "double_free_remote_batched", double_free_remote_batched, "osmem: free(): double free" },
};

int main(void)
{
	int failures = 0;
	for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
		int fds[2];
		if (pipe(fds) != 0)
			return 1;
		fflush(stdout);
		pid_t pid = fork();
		if (pid == 0) {
			close(fds[0]);
			dup2(fds[1], 2);
			signal(SIGABRT, SIG_DFL);
			alarm(10);
			cases[c].run();
			dprintf(2, "SURVIVED\n");
			_exit(0);
		}
		close(fds[1]);
		char out[2048];
		tu_read_all(fds[0], out, sizeof out);
		close(fds[0]);
		int st;
		waitpid(pid, &st, 0);
		const char *v = strstr(out, "VICTIM 0x");
		unsigned long slot = v ? strtoul(v + 9, NULL, 16) : 0;
		char want[128];
		snprintf(want, sizeof want, "%s 0x", cases[c].msg);
		const char *m = strstr(out, want);
		unsigned long addr = m ? strtoul(m + strlen(want), NULL, 16) : 0;
		if (!WIFSIGNALED(st) || WTERMSIG(st) != SIGABRT) {
			int segv = WIFSIGNALED(st) && WTERMSIG(st) == SIGSEGV;
			printf("FAIL front/corrupted_free_list/%s: the child did not die of SIGABRT (%s %d%s); stderr: "
			       "\"%.200s\"\n", cases[c].name, WIFSIGNALED(st) ? "killed by signal" : "exit status",
			       WIFSIGNALED(st) ? WTERMSIG(st) : WEXITSTATUS(st),
			       segv ? ", SIGSEGV: osmem followed a wild address" : "", out);
			failures++;
		} else if (!m || !addr || addr != slot) {
			printf("FAIL front/corrupted_free_list/%s: expected \"%s 0x%lx\", got \"%.200s\"\n", cases[c].name,
			       cases[c].msg, slot, out);
			failures++;
		} else {
			printf("PASS front/corrupted_free_list/%s\n", cases[c].name);
		}
	}
	return failures != 0;
}
