/* options: the drop-in's policy changed at run time (mallopt), read back for reports (malloc_info).
 *
 * Core layer, beside heap.c: it only writes fields of osm_heap.policy, under the heap lock, after osm_init
 * (osm_lock runs it) so that a setting is never overwritten by the profile's defaults. The classic profile's
 * rules are docs/CLASSIC.md's and do not move: every setter refuses there. No system call. */
#include "internal.h"

/* M_MMAP_MAX 0 keeps the thresholds it replaced, so that a later limit gives them back. */
static size_t saved_mmap_threshold, saved_calloc_threshold;
static bool no_mmap;

bool osm_option_set(enum osm_option opt, size_t value)
{
	osm_lock();
	struct heap_policy *p = &osm_heap.policy;
	bool ok = !osm_heap.classic;
	if (ok) {
		switch (opt) {
		case OPT_MMAP_THRESHOLD:
			if (no_mmap) { /* takes effect when mappings are allowed again */
				saved_mmap_threshold = saved_calloc_threshold = value;
			} else {
				p->mmap_threshold = p->calloc_threshold = value;
			}
			break;
		case OPT_TRIM_THRESHOLD:
			p->trim_threshold = value;
			break;
		case OPT_TOP_PAD:
			p->grow_min = value;
			p->trim_keep = value;
			break;
		case OPT_MMAP_MAX:
			if (!value && !no_mmap) {
				saved_mmap_threshold = p->mmap_threshold;
				saved_calloc_threshold = p->calloc_threshold;
				p->mmap_threshold = p->calloc_threshold = SIZE_MAX;
				no_mmap = true;
			} else if (value && no_mmap) {
				p->mmap_threshold = saved_mmap_threshold;
				p->calloc_threshold = saved_calloc_threshold;
				no_mmap = false;
			}
			p->mmap_max = value;
			break;
		}
		p->fixed_threshold = true; /* as glibc: any of these turns the dynamic threshold off */
	}
	osm_unlock();
	return ok;
}

void osm_option_get(struct heap_policy *out, bool *classic)
{
	osm_lock();
	*out = osm_heap.policy;
	*classic = osm_heap.classic;
	osm_unlock();
}

void osm_policy_keep_mappings(bool on)
{
	osm_heap.policy.map_cache = on;
}
