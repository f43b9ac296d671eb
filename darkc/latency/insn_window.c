/*
 * darkc's QEMU TCG plugin: guest instructions executed by every thread between two marker syscalls, and the
 * critical path through the parallel regions of a thread pool.
 *
 * Every guest instruction adds 1 to its thread's (vCPU's) counter (inline, as QEMU's tests/tcg/plugins/insn.c
 * does; in user mode each guest thread is a vCPU). The guest marks a window by calling sched_get_priority_max()
 * with a magic policy value - a harmless EINVAL on any kernel - once before and once after the code to measure
 * (darkc/latency/worker.py does, when DARKC_INSN_MARKERS=1). The thread that opens a window (the owner) snapshots
 * every thread's counter; at the close the plugin prints, for each window,
 *     window <n> cpu <owner> insns: <instructions of the owner between the two markers>
 *     window <n> thread <vcpu> insns: <instructions of that thread in the window>     (one line per thread)
 *     window <n> critical insns: <critical path> regions: <parallel regions>
 * and the whole-process totals as QEMU's libinsn does ("cpu <i> insns: N", "total insns: N").
 *
 * Regions: a third marker (policy "darm", second argument a guest code address, third the function's size) names
 * the thread pool's dispatch function (pthreadpool_parallelize, which every parallel operator of XNNPACK calls
 * and which returns when all threads are done). The owner's entry to it starts a parallel region; leaving it (a
 * RET, a BR or a tail-call B out of the function, found by decoding its instructions as they are translated)
 * ends it. Per window the plugin adds
 *     window <n> critical insns: <C> regions: <R> serial: <S> parallel: <P>
 * S: the owner's instructions outside regions (serial: the interpreter, unparallelised operators); P: every
 * thread's instructions inside regions (the parallel work); C: S plus, per region, the busiest thread's count.
 * C is what this emulation ran; which thread takes how much of a region follows the host's scheduling of the
 * guest threads (XNNPACK's pool steals work), so a timing model should prefer S and P (darkc/latency/cluster.py).
 * Without a region address the whole window is one region.
 *
 * Build: cc -shared -fPIC -O2 $(pkg-config --cflags glib-2.0) -I<qemu>/include/qemu insn_window.c -o X.so
 */
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>

#include <glib.h>
#include <qemu-plugin.h>

QEMU_PLUGIN_EXPORT int qemu_plugin_version = QEMU_PLUGIN_VERSION;

#define MARK_SYSCALL 125            /* aarch64 __NR_sched_get_priority_max */
#define MARK_START 0x6461726bULL    /* "dark" */
#define MARK_STOP 0x6461726cULL     /* "darl" */
#define MARK_REGION 0x6461726dULL   /* "darm": a2 = guest address of the thread pool's dispatch function */
#define MAX_REGION_ADDRS 8

/* Whether the aarch64 instruction ``word`` at ``va`` leaves the function [start, end): a RET, a BR, or a B whose
 * target lies outside (a tail call: pthreadpool_parallelize ends with `b pthread_mutex_unlock`). */
static int leaves_function(uint32_t word, uint64_t va, uint64_t start, uint64_t end)
{
    if ((word & 0xfffffc1fu) == 0xd65f0000u || (word & 0xfffffc1fu) == 0xd61f0000u) {
        return 1;
    }
    if ((word & 0xfc000000u) == 0x14000000u) {
        int64_t off = (int64_t)(int32_t)((word & 0x03ffffffu) << 6) >> 4;     /* imm26, sign-extended, x4 */
        uint64_t target = va + (uint64_t)off;

        return target < start || target >= end;
    }
    return 0;
}

typedef struct {
    uint64_t insns;
    uint64_t start;     /* counter at the window's start */
    uint64_t cut;       /* counter at the window's last region cut */
} VcpuCount;

static struct qemu_plugin_scoreboard *scores;
static qemu_plugin_u64 insns;
static GMutex lock;
static GString *windows;
static unsigned int n_windows;
static int owner = -1;              /* vCPU that opened the current window, -1 when none is open */
static int in_region;               /* the owner is inside the dispatch function */
static uint64_t critical;           /* serial + per region the busiest thread's count */
static uint64_t serial;             /* the owner's count outside regions */
static uint64_t parallel;           /* every thread's count inside regions */
static uint64_t regions;
static uint64_t region_addrs[MAX_REGION_ADDRS];
static uint64_t region_ends[MAX_REGION_ADDRS];
static unsigned int n_region_addrs;

/* Close the segment since the last cut (a region when in_region, else serial). Holds lock. */
static void cut_segment(void)
{
    uint64_t busiest = 0, sum = 0, mine = 0;

    for (int i = 0; i < qemu_plugin_num_vcpus(); i++) {
        VcpuCount *c = qemu_plugin_scoreboard_find(scores, i);
        uint64_t d = c->insns - c->cut;

        busiest = d > busiest ? d : busiest;
        sum += d;
        mine = i == owner ? d : mine;
        c->cut = c->insns;
    }
    if (in_region || n_region_addrs == 0) {
        critical += busiest;
        parallel += sum;
    } else {
        critical += mine;
        serial += mine;
    }
}

static void vcpu_region_enter(unsigned int vcpu, void *udata)
{
    if ((int)vcpu != owner) {
        return;
    }
    g_mutex_lock(&lock);
    if ((int)vcpu == owner && !in_region) {
        cut_segment();
        in_region = 1;
        regions++;
    }
    g_mutex_unlock(&lock);
}

static void vcpu_region_exit(unsigned int vcpu, void *udata)
{
    if ((int)vcpu != owner) {
        return;
    }
    g_mutex_lock(&lock);
    if ((int)vcpu == owner && in_region) {
        cut_segment();
        in_region = 0;
    }
    g_mutex_unlock(&lock);
}

static void vcpu_syscall(qemu_plugin_id_t id, unsigned int vcpu, int64_t num, uint64_t a1, uint64_t a2,
                         uint64_t a3, uint64_t a4, uint64_t a5, uint64_t a6, uint64_t a7, uint64_t a8)
{
    if (num != MARK_SYSCALL || (a1 != MARK_START && a1 != MARK_STOP && a1 != MARK_REGION)) {
        return;
    }
    g_mutex_lock(&lock);
    if (a1 == MARK_REGION) {
        if (n_region_addrs < MAX_REGION_ADDRS) {
            region_addrs[n_region_addrs] = a2;
            region_ends[n_region_addrs++] = a2 + a3;
        }
    } else if (a1 == MARK_START && owner < 0) {
        for (int i = 0; i < qemu_plugin_num_vcpus(); i++) {
            VcpuCount *c = qemu_plugin_scoreboard_find(scores, i);

            c->start = c->cut = c->insns;
        }
        owner = (int)vcpu;
        critical = serial = parallel = regions = 0;
        in_region = 0;
    } else if (a1 == MARK_STOP && (int)vcpu == owner) {
        unsigned int n = n_windows++;

        cut_segment();
        for (int i = 0; i < qemu_plugin_num_vcpus(); i++) {
            VcpuCount *c = qemu_plugin_scoreboard_find(scores, i);

            if (i == owner) {
                g_string_append_printf(windows, "window %u cpu %d insns: %" PRIu64 "\n", n, i, c->insns - c->start);
            }
            g_string_append_printf(windows, "window %u thread %d insns: %" PRIu64 "\n", n, i, c->insns - c->start);
        }
        g_string_append_printf(windows, "window %u critical insns: %" PRIu64 " regions: %" PRIu64 " serial: %"
                               PRIu64 " parallel: %" PRIu64 "\n", n, critical, regions, serial, parallel);
        owner = -1;
    }
    g_mutex_unlock(&lock);
}

static void vcpu_tb_trans(qemu_plugin_id_t id, struct qemu_plugin_tb *tb)
{
    size_t n = qemu_plugin_tb_n_insns(tb);
    uint64_t pc = qemu_plugin_tb_vaddr(tb);

    for (unsigned int r = 0; r < n_region_addrs; r++) {
        if (region_addrs[r] == pc) {
            qemu_plugin_register_vcpu_tb_exec_cb(tb, vcpu_region_enter, QEMU_PLUGIN_CB_NO_REGS, NULL);
        }
    }
    for (size_t i = 0; i < n; i++) {
        struct qemu_plugin_insn *insn = qemu_plugin_tb_get_insn(tb, i);
        uint64_t va = qemu_plugin_insn_vaddr(insn);

        for (unsigned int r = 0; r < n_region_addrs; r++) {
            uint32_t word = 0;

            if (va >= region_addrs[r] && va < region_ends[r] &&
                qemu_plugin_insn_data(insn, &word, sizeof(word)) == sizeof(word) &&
                leaves_function(word, va, region_addrs[r], region_ends[r])) {
                qemu_plugin_register_vcpu_insn_exec_cb(insn, vcpu_region_exit, QEMU_PLUGIN_CB_NO_REGS, NULL);
            }
        }
        qemu_plugin_register_vcpu_insn_exec_inline_per_vcpu(insn, QEMU_PLUGIN_INLINE_ADD_U64, insns, 1);
    }
}

static void plugin_exit(qemu_plugin_id_t id, void *p)
{
    GString *out = g_string_new(windows->str);

    for (int i = 0; i < qemu_plugin_num_vcpus(); i++) {
        g_string_append_printf(out, "cpu %d insns: %" PRIu64 "\n", i, qemu_plugin_u64_get(insns, i));
    }
    g_string_append_printf(out, "total insns: %" PRIu64 "\n", qemu_plugin_u64_sum(insns));
    qemu_plugin_outs(out->str);
    g_string_free(out, TRUE);
    g_string_free(windows, TRUE);
    qemu_plugin_scoreboard_free(scores);
}

QEMU_PLUGIN_EXPORT int qemu_plugin_install(qemu_plugin_id_t id, const qemu_info_t *info, int argc, char **argv)
{
    scores = qemu_plugin_scoreboard_new(sizeof(VcpuCount));
    insns = qemu_plugin_scoreboard_u64_in_struct(scores, VcpuCount, insns);
    windows = g_string_new(NULL);
    qemu_plugin_register_vcpu_tb_trans_cb(id, vcpu_tb_trans);
    qemu_plugin_register_vcpu_syscall_cb(id, vcpu_syscall);
    qemu_plugin_register_atexit_cb(id, plugin_exit, NULL);
    return 0;
}
