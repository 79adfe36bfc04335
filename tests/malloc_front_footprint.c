/* malloc_front_footprint: what the drop-in costs a program that barely allocates.
 *
 * Hazard: every process that preloads osmem pays for the library's initialised writable data (its pages are
 * mapped from the file and resident), however little it allocates.
 * Small programs are where osmem's peak RSS is furthest above glibc's (docs/TRADEOFFS.md), so a regression here
 * shows in every one of them. It happened once: the empty heap (front.c), one initialised struct, carried the
 * 18 KiB stacks of a thread's caches, and the library's writable segment was 24 KiB resident instead of 8.
 * The same for .bss: the big tables (the segment map, 4 MiB; the first slot chunk, 24 MiB) once sat between the
 * small globals, so a program touched a page on each side of every table: 9 pages of data and .bss in all.
 * Checked:
 *   - data_segment_small: the library's file-backed writable mapping (.data, .got: what the loader maps from
 *     the file and relocates) is at most 12 KiB. Big initialised objects must not exist;
 *   - bss_small: the library's .bss section (read from its ELF file) is at most 16 KiB: the big tables are in
 *     .lbss (LARGE_BSS, internal.h), which the linker places after it, so the small globals share a few pages;
 *   - segment_metadata_one_page: a program with objects of 12 size classes has at most 2 of the 16 pages of its
 *     segment's metadata (the descriptors of 64 pages and the segment's fields) resident, after os_stats and
 *     malloc_info have read the descriptors. Until session 27 a new segment wrote all 63 descriptors (each put on
 *     the pool) and its fields after them: 5 pages, 16 KiB more in every process;
 *   - idle_transfer_cache_not_written: after the front's first decay pass (due at a process's first request that
 *     reaches the core), the library's .lbss (the anonymous mapping right after its writable segment) has at most
 *     12 KiB resident (smaps' Rss, which leaves out the zero page reads map): the first slot chunk's page and the
 *     segment map's. Until session 38 the pass stored 0 into each empty bin's mark of the transfer cache
 *     (medium.c, a 16 KiB array): 28 KiB resident in every process, pairs' included.
 * Prints `PASS front/footprint/...` or `FAIL ...: why`. */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <elf.h>
#include <malloc.h>
#include <sys/mman.h>
#include <sys/prctl.h>

#include "osmem.h"

static int failures;

static void result(const char *name, const char *why)
{
	if (why) {
		printf("FAIL front/footprint/%s: %s\n", name, why);
		failures++;
	} else {
		printf("PASS front/footprint/%s\n", name);
	}
	fflush(stdout);
}

struct data_seg { size_t bytes; bool found; char path[256]; };

/* The library's file-backed writable mappings (rw-p, named by its path) in /proc/self/maps: their bytes, and
 * the library's path. */
static void find_data(struct data_seg *d)
{
	FILE *f = fopen("/proc/self/maps", "r");
	if (!f)
		return;
	char line[512];
	while (fgets(line, sizeof line, f)) {
		unsigned long lo, hi;
		char perms[8];
		int off = 0;
		if (sscanf(line, "%lx-%lx %7s %*s %*s %*s %n", &lo, &hi, perms, &off) != 3 || off == 0)
			continue;
		line[strcspn(line, "\n")] = 0;
		if (strstr(line + off, "libosmem-malloc.so") && !strcmp(perms, "rw-p")) {
			d->bytes += hi - lo;
			d->found = true;
			snprintf(d->path, sizeof d->path, "%s", line + off);
		}
	}
	fclose(f);
}

/* The Rss (KiB, from /proc/self/smaps) of the anonymous mapping that starts where the library's last file-backed
 * writable mapping ends: its .lbss, the big tables. -1 if there is none. */
static long lbss_rss_kib(void)
{
	FILE *f = fopen("/proc/self/smaps", "r");
	if (!f)
		return -1;
	char line[512];
	unsigned long lib_end = 0;
	bool in_lbss = false;
	long rss = -1;
	while (fgets(line, sizeof line, f)) {
		unsigned long lo, hi;
		char perms[8];
		int off = 0;
		if (sscanf(line, "%lx-%lx %7s %*s %*s %*s %n", &lo, &hi, perms, &off) == 3 && off > 0) {
			line[strcspn(line, "\n")] = 0;
			bool anon = line[off] == 0;
			in_lbss = anon && lib_end && lo == lib_end;
			if (strstr(line + off, "libosmem-malloc.so") && !strcmp(perms, "rw-p"))
				lib_end = hi;
		} else if (in_lbss && !strncmp(line, "Rss:", 4)) {
			rss = atol(line + 4);
			in_lbss = false;
		}
	}
	fclose(f);
	return rss;
}

/* The size of the section called `name` in the ELF file at path, or -1. */
static long section_size(const char *path, const char *name)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return -1;
	long size = -1;
	Elf64_Ehdr eh;
	if (fread(&eh, sizeof eh, 1, f) == 1 && eh.e_shentsize == sizeof(Elf64_Shdr) && eh.e_shstrndx < eh.e_shnum) {
		Elf64_Shdr *sh = calloc(eh.e_shnum, sizeof *sh);
		if (sh && !fseek(f, (long)eh.e_shoff, SEEK_SET) && fread(sh, sizeof *sh, eh.e_shnum, f) == eh.e_shnum) {
			char *names = malloc(sh[eh.e_shstrndx].sh_size + 1);
			if (names && !fseek(f, (long)sh[eh.e_shstrndx].sh_offset, SEEK_SET) &&
			    fread(names, 1, sh[eh.e_shstrndx].sh_size, f) == sh[eh.e_shstrndx].sh_size) {
				names[sh[eh.e_shstrndx].sh_size] = 0;
				for (unsigned i = 0; i < eh.e_shnum; i++)
					if (sh[i].sh_name < sh[eh.e_shstrndx].sh_size && !strcmp(names + sh[i].sh_name, name))
						size = (long)sh[i].sh_size;
			}
			free(names);
		}
		free(sh);
	}
	fclose(f);
	return size;
}

int main(void)
{
	char why[512];
	struct os_stats st;
	os_stats(&st); /* osmem's: the test links the library (and so it stays linked under --as-needed) */

	struct data_seg d = { 0, false, "" };
	find_data(&d);
	if (!d.found)
		result("data_segment_small", "no rw-p mapping of libosmem-malloc.so in /proc/self/maps");
	else if (d.bytes > 12 * 1024) {
		snprintf(why, sizeof why, "the library maps %zu KiB of initialised writable data from its file (at most 12): "
			 "a large initialised object in .data (nm -S --size-sort -t d libosmem-malloc.so | grep ' [dD] ')",
			 d.bytes / 1024);
		result("data_segment_small", why);
	} else {
		result("data_segment_small", NULL);
	}

	long bss = d.found ? section_size(d.path, ".bss") : -1;
	if (bss < 0) {
		snprintf(why, sizeof why, "no .bss section read from %s", d.found ? d.path : "(library not found)");
		result("bss_small", why);
	} else if (bss > 16 * 1024) {
		snprintf(why, sizeof why, "the library's .bss is %ld KiB (at most 16): a big table outside .lbss "
			 "(mark it LARGE_BSS; nm -S --size-sort -t d on the library lists them)", bss / 1024);
		result("bss_small", why);
	} else {
		result("bss_small", NULL);
	}

	/* one object of each class from 16 to 256 bytes: 12 pages of a fresh segment in use. Where the kernel's huge
	 * pages are `always`, the first write to a segment could bring a whole 2 MiB page: not for this process */
	prctl(PR_SET_THP_DISABLE, 1, 0, 0, 0);
	void *keep[12];
	for (int i = 0; i < 12; i++)
		keep[i] = malloc(i < 8 ? 16 * (size_t)(i + 1) : 128 + 32 * (size_t)(i - 7));
	/* and what reads every segment's descriptors (os_stats, malloc_info) reads none of pages never handed out: a
	 * read would map them (the zero page, which mincore counts) */
	struct os_stats after;
	os_stats(&after);
	FILE *null = fopen("/dev/null", "w");
	if (null) {
		malloc_info(0, null);
		fclose(null);
	}
	unsigned char vec[16];
	char *seg = (char *)((uintptr_t)keep[0] & ~(((uintptr_t)4 << 20) - 1));
	if (mincore(seg, 64 * 1024, vec) != 0) {
		snprintf(why, sizeof why, "mincore of the segment's first 64 KiB at %p (of the object %p) failed: not a "
			 "front segment?", (void *)seg, keep[0]);
		result("segment_metadata_one_page", why);
	} else {
		int resident = 0;
		char pages[64] = "";
		for (int i = 0; i < 16; i++)
			if (vec[i] & 1) {
				resident++;
				snprintf(pages + strlen(pages), sizeof pages - strlen(pages), " %d", i);
			}
		if (resident > 2) {
			snprintf(why, sizeof why, "%d of the 16 pages of the segment's metadata at %p are resident (at most 2), "
				 "pages%s: the descriptors of pages not yet handed out were written or read (a read maps the zero page), "
				 "or the segment's fields sit outside page 0",
				 resident, (void *)seg, pages);
			result("segment_metadata_one_page", why);
		} else {
			result("segment_metadata_one_page", NULL);
		}
	}

	/* a request for the core (1 MiB: a mapping) runs the front's idle tick, and the first decay pass is due at
	 * once (none ran before): the transfer cache's decay looks at its bins, all empty in this process */
	free(malloc((size_t)1 << 20));
	long lbss = lbss_rss_kib();
	if (lbss < 0) {
		result("idle_transfer_cache_not_written", "no anonymous mapping (.lbss) right after the library's "
		       "writable segment in /proc/self/smaps");
	} else if (lbss > 12) {
		snprintf(why, sizeof why, "the library's .lbss has %ld KiB resident (at most 12) in a program that never "
			 "used a medium block: a table written for nothing (the decay of the transfer cache's empty bins?)",
			 lbss);
		result("idle_transfer_cache_not_written", why);
	} else {
		result("idle_transfer_cache_not_written", NULL);
	}
	for (int i = 0; i < 12; i++)
		free(keep[i]);

	return failures != 0;
}
