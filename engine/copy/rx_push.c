/* The loop's side of the hand-off to a copy's receiver thread (receiver.h): items pushed into the
 * thread's queue in order, BLOCK items held for the loop to write itself while the thread is idle
 * (ls_copy_rx_run_held, receiver.c), and the SHA-256 of each GEN_DATA item computed as it is
 * pushed (prehash). */
#include "copy/receiver.h"
#include "copy/receiver_int.h"

#include <stdlib.h>
#include <string.h>

#include "core/core.h"
#include "core/workq.h"

static void push_queue(ls_copy_rx_t *rx, ls_copy_item_t *it)
{
    ls_workq_msg_t m = {.type = (int) it->kind, .ptr = it, .len = it->len};
    bool end = it->kind == LS_COPY_ITEM_END;
    if (end) __atomic_fetch_add(&rx->ends, 1, __ATOMIC_RELAXED); /* before the thread can see it */
    if (!rx->started || ls_workq_push(rx->work, &m) != 0) {
        if (end) __atomic_fetch_sub(&rx->ends, 1, __ATOMIC_RELAXED);
        free(it); /* stopped: dropped */
        return;
    }
    rx->pushed++;
}

/* The held BLOCK items go into the queue ahead of anything pushed after them (in order). */
static void release_held(ls_copy_rx_t *rx)
{
    ls_copy_item_t *it = rx->held;
    rx->held = NULL;
    rx->held_last = NULL;
    rx->held_bytes = 0;
    while (it) {
        ls_copy_item_t *next = it->link;
        it->link = NULL;
        push_queue(rx, it);
        it = next;
    }
}

/* The thread is idle (every item pushed is finished): until the next push the copy is the
 * caller's. */
bool ls_copy_rx_idle(ls_copy_rx_t *rx)
{
    return rx->started && __atomic_load_n(&rx->done, __ATOMIC_ACQUIRE) == rx->pushed;
}

/* Whether BLOCK item it may be held for the loop: the thread idle, and the shadow takes it by a
 * write and one fdatasync (the first held), or it follows the last one held. */
static bool holdable(ls_copy_rx_t *rx, const ls_copy_item_t *it)
{
    if (!rx->inline_sync_ns || it->kind != LS_COPY_ITEM_BLOCK || !ls_copy_rx_idle(rx) ||
        !rx->copy || rx->held_bytes + it->len > LS_COPY_SHADOW_QUICK_MAX)
        return false;
    if (!rx->held)
        return ls_copy_shadow_quick(rx->copy, it->epoch, it->generation, it->offset, it->len,
                                    rx->inline_sync_ns);
    const ls_copy_item_t *last = rx->held_last;
    return it->epoch == last->epoch && it->generation == last->generation &&
           it->offset <= last->offset + last->len;
}

/* The pushing thread's share of the receive: the SHA-256 of a generation's DATA, hashed right
 * after the loop copied them into the item (in its cache), so that the receiver thread only
 * writes and inspects them. Only bytes that continue a generation begun at offset 0 are hashed,
 * in the order pushed, which is the order the thread takes them: the copy then takes each
 * hashed item only where its own receive is at the same offset (ls_copy_recv_data_hashed), and
 * the END's digest only when every byte came hashed; anything else is received as before. */
static void prehash(ls_copy_rx_t *rx, ls_copy_item_t *it)
{
    switch (it->kind) {
    case LS_COPY_ITEM_BEGIN:
        rx->hashing = it->offset == 0 && it->size >= LS_GEN_TRAILER_SIZE &&
                      (rx->sha || (rx->sha = ls_sha256_new()) != NULL);
        if (!rx->hashing) return;
        ls_sha256_reset(rx->sha);
        rx->gen = it->generation;
        rx->size = it->size;
        rx->next = 0;
        return;
    case LS_COPY_ITEM_ABORT:
        rx->hashing = false;
        return;
    case LS_COPY_ITEM_DATA: {
        if (LS_FAULT("receiver.flip_bit") && it->len) it->data[it->len / 2] ^= 0x10;
        if (!rx->hashing || it->generation != rx->gen || it->offset != rx->next ||
            it->len > rx->size - rx->next) {
            rx->hashing = false; /* the receive refuses it too; the rest is not hashed here */
            return;
        }
        uint64_t hash_end = rx->size - LS_GEN_TRAILER_SIZE;
        if (it->offset < hash_end)
            ls_sha256_update(rx->sha, it->data,
                             (size_t) LS_MIN((uint64_t) it->len, hash_end - it->offset));
        rx->next += it->len;
        it->hashed = true;
        return;
    }
    case LS_COPY_ITEM_END:
        if (rx->hashing && it->generation == rx->gen && rx->next == rx->size) {
            ls_sha256_final(rx->sha, it->hash);
            it->hashed = true;
        }
        rx->hashing = false;
        return;
    default: /* RUN, BLOCK: no part of a GEN_ stream */
        return;
    }
}

void ls_copy_rx_push(ls_copy_rx_t *rx, ls_copy_item_t *it)
{
    prehash(rx, it);
    if (holdable(rx, it)) {
        bool first = !rx->held;
        it->link = NULL;
        if (rx->held_last)
            rx->held_last->link = it;
        else
            rx->held = it;
        rx->held_last = it;
        rx->held_bytes += it->len;
        if (first) ls__copy_rx_notify(rx); /* the loop comes back for it: ls_copy_rx_run_held */
        return;
    }
    release_held(rx);
    push_queue(rx, it);
}
