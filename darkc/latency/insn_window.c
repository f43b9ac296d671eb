/*
 * darkc's QEMU TCG plugin: guest instructions executed by one thread between two marker syscalls.
 *
 * Every guest instruction adds 1 to its thread's (vCPU's) counter (inline, as QEMU's tests/tcg/plugins/insn.c
 * does). The guest marks a window by calling sched_get_priority_max() with a magic policy value - a harmless
 * EINVAL on any kernel - once before and once after the code to measure (darkc/latency/worker.py does, when
 * DARKC_INSN_MARKERS=1). At exit the plugin prints, for each closed window,
 *     window <n> cpu <vcpu> insns: <instructions between the two markers>
 * and the whole-process totals as QEMU's libinsn does ("cpu <i> insns: N", "total insns: N"). Start-up, imports
 * and model loading fall outside the window, so the count is that of the measured code alone.
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

typedef struct {
    uint64_t insns;
    uint64_t start;
    uint64_t open;
} VcpuCount;

static struct qemu_plugin_scoreboard *scores;
static qemu_plugin_u64 insns;
static GMutex lock;
static GString *windows;
static unsigned int n_windows;

static void vcpu_syscall(qemu_plugin_id_t id, unsigned int vcpu, int64_t num, uint64_t a1, uint64_t a2,
                         uint64_t a3, uint64_t a4, uint64_t a5, uint64_t a6, uint64_t a7, uint64_t a8)
{
    VcpuCount *c;

    if (num != MARK_SYSCALL || (a1 != MARK_START && a1 != MARK_STOP)) {
        return;
    }
    c = qemu_plugin_scoreboard_find(scores, vcpu);
    if (a1 == MARK_START) {
        c->start = c->insns;
        c->open = 1;
        return;
    }
    if (c->open) {
        g_mutex_lock(&lock);
        g_string_append_printf(windows, "window %u cpu %u insns: %" PRIu64 "\n", n_windows++, vcpu,
                               c->insns - c->start);
        g_mutex_unlock(&lock);
        c->open = 0;
    }
}

static void vcpu_tb_trans(qemu_plugin_id_t id, struct qemu_plugin_tb *tb)
{
    size_t n = qemu_plugin_tb_n_insns(tb);

    for (size_t i = 0; i < n; i++) {
        qemu_plugin_register_vcpu_insn_exec_inline_per_vcpu(qemu_plugin_tb_get_insn(tb, i),
                                                            QEMU_PLUGIN_INLINE_ADD_U64, insns, 1);
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
