/* test_loop.c - the event loop's timers: embedded handles that cannot dangle.
 *
 * A timer is stopped after it fired, stopped twice, re-armed from its own callback,
 * stops another timer from a callback, and many timers fire in deadline order (the heap).
 * Run under ASan (CI does) a use of a freed or stale handle would abort here. */
#include "aptdht-config.h"
#include <stdlib.h>
#include <string.h>
#include "apt-dht-proxy/loop.h"
#include "tests/unit/unit.h"

struct rec {
    struct loop_timer t;
    struct loop_timer *other; /* stopped by this one's callback, if set */
    int fired;
    int rearm; /* times the callback re-arms itself */
    int order; /* position in the firing sequence */
};

static int seq;

static void on_fire(struct loop *l, struct loop_timer *t, void *ud)
{
    struct rec *r = ud;
    CU_ASSERT_PTR_EQUAL(t, &r->t);
    CU_ASSERT_FALSE(loop_timer_armed(t)); /* disarmed before the callback */
    r->fired++;
    r->order = ++seq;
    if (r->other)
        loop_timer_stop(l, r->other);
    if (r->rearm > 0) {
        r->rearm--;
        loop_timer_start(l, t, 0);
    }
}

static void on_stop(struct loop *l, struct loop_timer *t, void *ud)
{
    loop_stop(l);
}

/* Runs the loop until the stopper (armed at ms) fires. */
static void run_for(struct loop *l, uint64_t ms)
{
    struct loop_timer stopper;
    loop_timer_init(&stopper, on_stop, NULL);
    CU_ASSERT_EQUAL(loop_timer_start(l, &stopper, ms), 0);
    CU_ASSERT_EQUAL(loop_run(l), 0);
    loop_timer_stop(l, &stopper);
}

static void test_stop_after_fire_and_twice(void)
{
    struct loop *l;
    struct rec a = {0}, b = {0};
    CU_ASSERT_FATAL(loop_new(&l) == 0);
    loop_timer_init(&a.t, on_fire, &a);
    loop_timer_init(&b.t, on_fire, &b);
    loop_timer_stop(l, &a.t); /* never started */
    CU_ASSERT_EQUAL(loop_timer_start(l, &a.t, 1), 0);
    CU_ASSERT_EQUAL(loop_timer_start(l, &b.t, 1), 0);
    CU_ASSERT_TRUE(loop_timer_armed(&a.t));
    loop_timer_stop(l, &b.t);
    loop_timer_stop(l, &b.t); /* twice */
    CU_ASSERT_FALSE(loop_timer_armed(&b.t));
    run_for(l, 20);
    CU_ASSERT_EQUAL(a.fired, 1);
    CU_ASSERT_EQUAL(b.fired, 0);
    loop_timer_stop(l, &a.t); /* after it fired */
    loop_timer_stop(l, &a.t);
    CU_ASSERT_FALSE(loop_timer_armed(&a.t));
    loop_free(l);
}

static void test_rearm_and_restart(void)
{
    struct loop *l;
    struct rec a = {.rearm = 3};
    CU_ASSERT_FATAL(loop_new(&l) == 0);
    loop_timer_init(&a.t, on_fire, &a);
    CU_ASSERT_EQUAL(loop_timer_start(l, &a.t, 5000), 0);
    CU_ASSERT_EQUAL(loop_timer_start(l, &a.t, 1), 0); /* restart moves the deadline */
    run_for(l, 30);
    CU_ASSERT_EQUAL(a.fired, 4);
    loop_free(l);
}

static void test_stop_other_from_callback(void)
{
    struct loop *l;
    struct rec a = {0}, b = {0};
    CU_ASSERT_FATAL(loop_new(&l) == 0);
    loop_timer_init(&a.t, on_fire, &a);
    loop_timer_init(&b.t, on_fire, &b);
    a.other = &b.t;
    loop_timer_start(l, &a.t, 1);
    loop_timer_start(l, &b.t, 2);
    run_for(l, 30);
    CU_ASSERT_EQUAL(a.fired, 1);
    CU_ASSERT_EQUAL(b.fired, 0); /* stopped before it was due */
    loop_free(l);
}

/* Many timers, started in a scrambled order and some stopped: the rest fire once each,
 * in the order of their deadlines. */
static void test_heap_order(void)
{
    enum { N = 200 };
    struct loop *l;
    struct rec *r = calloc(N, sizeof *r);
    CU_ASSERT_FATAL(r != NULL);
    CU_ASSERT_FATAL(loop_new(&l) == 0);
    seq = 0;
    for (int i = 0; i < N; i++) {
        int k = (i * 37) % N; /* 37 is prime to N: a permutation */
        loop_timer_init(&r[k].t, on_fire, &r[k]);
        CU_ASSERT_EQUAL(loop_timer_start(l, &r[k].t, (uint64_t)(k / 10) * 10), 0);
    }
    for (int k = 0; k < N; k += 7)
        loop_timer_stop(l, &r[k].t);
    run_for(l, 300);
    int last = 0;
    for (int k = 0; k < N; k++) {
        if (k % 7 == 0) {
            CU_ASSERT_EQUAL(r[k].fired, 0);
            continue;
        }
        CU_ASSERT_EQUAL(r[k].fired, 1);
        if (k % 10 == 0 && k > 0) /* a later deadline fires after every earlier one */
            CU_ASSERT_TRUE(r[k].order > last);
        if (k % 10 == 9 || k == N - 1)
            last = r[k].order;
    }
    loop_free(l);
    free(r);
}

/* An owner may outlive the loop: freeing the loop leaves its armed timers idle. */
static void test_free_with_armed(void)
{
    struct loop *l;
    struct rec a = {0};
    CU_ASSERT_FATAL(loop_new(&l) == 0);
    loop_timer_init(&a.t, on_fire, &a);
    loop_timer_start(l, &a.t, 60000);
    loop_free(l);
    CU_ASSERT_FALSE(loop_timer_armed(&a.t));
}

int main(void)
{
    static const struct unit_case cases[] = {
        {"stop after fire, stop twice", test_stop_after_fire_and_twice},
        {"re-arm from the callback, restart", test_rearm_and_restart},
        {"a callback stops another timer", test_stop_other_from_callback},
        {"200 timers fire in deadline order", test_heap_order},
        {"loop freed with a timer armed", test_free_with_armed},
        {NULL, NULL},
    };
    return unit_run("loop", cases);
}
