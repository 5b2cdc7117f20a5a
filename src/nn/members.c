/* Ensembles: the parameters of other networks of the same architecture carried in one network.
 *
 * Member 0 is the network itself; member K (1 <= K < AVEMO_NN_MAX_MEMBERS) is stored as the
 * named arrays "ensemble.K.params" (nparams floats, avemo's flat order) and "ensemble.K.stats"
 * (nstats floats: the batch-norm running statistics), so a model file holds them without a new
 * format (src/nn/model_file.c).  Forward passes ignore them: a member is run as a network of its
 * own (avemo_net_member), built from the same pipeline text, so any context of the first serves
 * it.  The model module averages the members' probabilities; the ONNX export builds every member. */
#include "nn/nn_internal.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void member_array_names(int k, char *params, char *stats, size_t size)
{
    snprintf(params, size, AVEMO_NN_MEMBER_PREFIX "%d.params", k);
    snprintf(stats, size, AVEMO_NN_MEMBER_PREFIX "%d.stats", k);
}

int avemo_net_member_count(const avemo_net *net)
{
    int n = 1;
    for (; n < AVEMO_NN_MAX_MEMBERS; n++) {
        char p[64], s[64];
        member_array_names(n, p, s, sizeof p);
        if (!avemo_net_array(net, p, NULL) || !avemo_net_array(net, s, NULL)) break;
    }
    return n;
}

/* Same layers with the same shapes and options, same classes and labels: the member's flat
 * parameters mean the same thing in both. */
static enum avemo_status check_same_architecture(const avemo_net *net, const avemo_net *m, struct avemo_error *err)
{
    if (m->nlayers != net->nlayers || m->ninputs != net->ninputs || m->nparams != net->nparams ||
        m->nstats != net->nstats || m->classes != net->classes)
        return avemo_fail(err, AVEMO_ERR_MISMATCH,
                          "%s: another architecture than %s (%d layers, %zu parameters against %d, %zu)", m->name,
                          net->name, m->nlayers, m->nparams, net->nlayers, net->nparams);
    for (int i = 0; i < net->nlayers; i++) {
        char a[256], b[256];
        avemo_net_layer_describe(net, i, a, sizeof a);
        avemo_net_layer_describe(m, i, b, sizeof b);
        if (strcmp(a, b) != 0)
            return avemo_fail(err, AVEMO_ERR_MISMATCH, "%s: layer %d is '%s' where %s has '%s'", m->name, i, b,
                              net->name, a);
    }
    for (int c = 0; c < net->classes; c++) {
        const char *x = avemo_net_label(net, c), *y = avemo_net_label(m, c);
        if ((x || y) && (!x || !y || strcmp(x, y) != 0))
            return avemo_fail(err, AVEMO_ERR_MISMATCH, "%s: class %d is '%s' where %s has '%s'", m->name, c,
                              y ? y : "(none)", net->name, x ? x : "(none)");
    }
    return AVEMO_OK;
}

enum avemo_status avemo_net_add_member(avemo_net *net, const avemo_net *member, struct avemo_error *err)
{
    int k = avemo_net_member_count(net);
    if (k >= AVEMO_NN_MAX_MEMBERS)
        return avemo_fail(err, AVEMO_ERR_TOO_LARGE, "%s: an ensemble holds at most %d networks", net->name,
                          AVEMO_NN_MAX_MEMBERS);
    if (avemo_net_member_count(member) > 1)
        return avemo_fail(err, AVEMO_ERR_UNSUPPORTED, "%s: is an ensemble itself; give its members one by one (avemo ensemble --member K)",
                          member->name);
    enum avemo_status st = check_same_architecture(net, member, err);
    char p[64], s[64];
    member_array_names(k, p, s, sizeof p);
    if (!st) st = avemo_net_set_array(net, p, member->params, member->nparams, err);
    if (!st) st = avemo_net_set_array(net, s, member->stats, member->nstats, err);
    return st;
}

/* The parameters and statistics of member k (1..count-1), checked against the network's sizes. */
static enum avemo_status member_arrays(const avemo_net *net, int k, const float **params, const float **stats,
                                       struct avemo_error *err)
{
    char p[64], s[64];
    member_array_names(k, p, s, sizeof p);
    size_t np = 0, ns = 0;
    *params = avemo_net_array(net, p, &np);
    *stats = avemo_net_array(net, s, &ns);
    if (k < 1 || !*params || !*stats)
        return avemo_fail(err, AVEMO_ERR_INVALID_ARG, "%s: has no ensemble member %d", net->name, k);
    if (np != net->nparams || ns != net->nstats)
        return avemo_fail(err, AVEMO_ERR_CORRUPT, "%s: member %d has %zu parameters and %zu statistics, not %zu and %zu",
                          net->name, k, np, ns, net->nparams, net->nstats);
    return AVEMO_OK;
}

enum avemo_status avemo_net_member(const avemo_net *net, int k, avemo_net **out, struct avemo_error *err)
{
    *out = NULL;
    char name[sizeof net->name + 16];
    const float *params, *stats;
    enum avemo_status st = member_arrays(net, k, &params, &stats, err);
    if (st) return st;
    snprintf(name, sizeof name, "%s#%d", net->name, k);
    avemo_net *m;
    /* The same pipeline text: the same layers, and contexts of the first network serve it.  Its
     * parameters are read where net keeps them: a copy cost a one-clip process ~2 ms per
     * megabyte of fresh memory (docs/performance.md). */
    st = nn_net_create_borrowing(net->pipeline, name, params, stats, &m, err);
    if (st) return st;
    if (net->labels) st = avemo_net_set_labels(m, (const char *const *)net->labels, net->classes, err);
    if (st) {
        avemo_net_free(m);
        return st;
    }
    *out = m;
    return AVEMO_OK;
}

/* Remove array i, keeping the others in order. */
static void drop_array(avemo_net *net, int i)
{
    free(net->arrays[i].data);
    memmove(&net->arrays[i], &net->arrays[i + 1], sizeof net->arrays[0] * (size_t)(net->narrays - i - 1));
    net->narrays--;
}

enum avemo_status avemo_net_keep_member(avemo_net *net, int k, struct avemo_error *err)
{
    int count = avemo_net_member_count(net);
    if (k < 0 || k >= count)
        return avemo_fail(err, AVEMO_ERR_INVALID_ARG, "%s: has no ensemble member %d (it has %d network%s)", net->name, k,
                          count, count == 1 ? "" : "s");
    if (k > 0) {
        const float *params, *stats;
        enum avemo_status st = member_arrays(net, k, &params, &stats, err);
        if (st) return st;
        nn_net_unprepare(net);
        memcpy(net->params, params, sizeof(float) * net->nparams);
        memcpy(net->stats, stats, sizeof(float) * net->nstats);
    }
    for (int i = net->narrays - 1; i >= 0; i--)
        if (strncmp(net->arrays[i].name, AVEMO_NN_MEMBER_PREFIX, strlen(AVEMO_NN_MEMBER_PREFIX)) == 0) drop_array(net, i);
    assert(avemo_net_member_count(net) == 1);
    return AVEMO_OK;
}
