/* The network description: the [network], [branch.NAME] and [head] sections of a pipeline
 * INI file (an avemo_cfg), checked, and turned into the layer table with shapes and
 * parameter offsets.  Syntax (docs/nn.md):
 *
 *   [network]
 *   inputs = audio:1x40x128, face:3x64x64
 *   labels = ANG, DIS, FEA, HAP, NEU, SAD        ; optional, one per class
 *   [branch.audio]
 *   layers = conv 32 3 same, bn, relu, maxpool 2,
 *            gap, dense 128, relu, dropout 0.5   ; continuation lines are indented
 *   [head]
 *   layers = dense 256, bn, relu, dropout 0.5, dense 6
 */
#include "nn/nn_internal.h"

#include <assert.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LIST_MAX 4096 /* characters of one layers / inputs / labels list */

struct parse_state {
    const char *name;   /* for messages */
    char inputs[LIST_MAX], labels[LIST_MAX];
    int classes;        /* 0 = infer from the last dense layer */
    char stage_names[AVEMO_NN_MAX_INPUTS + 1][AVEMO_NN_NAME_MAX];
    char stage_layers[AVEMO_NN_MAX_INPUTS + 1][LIST_MAX];
    int stage_seen[AVEMO_NN_MAX_INPUTS + 1];
    int nbranches;      /* [branch.*] sections seen; the head is slot AVEMO_NN_MAX_INPUTS */
    char message[AVEMO_ERROR_MESSAGE_MAX];
};

#define HEAD_SLOT AVEMO_NN_MAX_INPUTS

/* Multi-line values arrive as one handler call per line: join them with commas. */
static int append_list(struct parse_state *ps, char *dst, const char *section, const char *value)
{
    size_t have = strlen(dst), add = strlen(value);
    /* libinih keeps "; comment" on continuation lines: cut at a ';' that starts the value or
     * follows a space, as it does on the first line (and as Python's configparser does). */
    for (size_t i = 0; i < add; i++) {
        if (value[i] == ';' && (i == 0 || isspace((unsigned char)value[i - 1]))) {
            add = i;
            break;
        }
    }
    if (have + add + 2 >= LIST_MAX) {
        snprintf(ps->message, sizeof ps->message, "[%s]: list longer than %d characters", section, LIST_MAX);
        return 0;
    }
    if (have) dst[have++] = ',';
    memcpy(dst + have, value, add);
    dst[have + add] = 0;
    return 1;
}

static int stage_slot(struct parse_state *ps, const char *section)
{
    if (strcmp(section, "head") == 0) return HEAD_SLOT;
    const char *bname = section + strlen("branch.");
    for (int i = 0; i < ps->nbranches; i++)
        if (strcmp(ps->stage_names[i], bname) == 0) return i;
    if (ps->nbranches == AVEMO_NN_MAX_INPUTS) {
        snprintf(ps->message, sizeof ps->message, "[%s]: more than %d branches", section, AVEMO_NN_MAX_INPUTS);
        return -1;
    }
    if (*bname == 0 || strlen(bname) >= 16) {
        snprintf(ps->message, sizeof ps->message, "[%s]: a branch name has 1 to 15 characters", section);
        return -1;
    }
    snprintf(ps->stage_names[ps->nbranches], AVEMO_NN_NAME_MAX, "%s", bname);
    return ps->nbranches++;
}

static int on_ini_entry(void *user, const char *section, const char *key, const char *value)
{
    struct parse_state *ps = user;
    if (strcmp(section, "network") == 0) {
        if (strcmp(key, "inputs") == 0) return append_list(ps, ps->inputs, section, value);
        if (strcmp(key, "labels") == 0) return append_list(ps, ps->labels, section, value);
        if (strcmp(key, "classes") == 0) {
            if (avemo_parse_int(value, 2, AVEMO_MAX_CLASSES, &ps->classes) == AVEMO_OK) return 1;
            snprintf(ps->message, sizeof ps->message, "[network] classes = '%s': not a number in 2..%d", value,
                     AVEMO_MAX_CLASSES);
            return 0;
        }
        if (strcmp(key, "fusion") == 0) {
            if (strcmp(value, "concat") == 0) return 1;
            snprintf(ps->message, sizeof ps->message, "[network] fusion = '%s': only 'concat' is supported", value);
            return 0;
        }
        snprintf(ps->message, sizeof ps->message, "[network]: unknown key '%s' (inputs, labels, classes, fusion)",
                 key);
        return 0;
    }
    if (strcmp(section, "head") == 0 || strncmp(section, "branch.", 7) == 0) {
        if (strcmp(key, "layers") != 0) {
            snprintf(ps->message, sizeof ps->message, "[%s]: unknown key '%s' (expected 'layers')", section, key);
            return 0;
        }
        int slot = stage_slot(ps, section);
        if (slot < 0) return 0;
        ps->stage_seen[slot] = 1;
        return append_list(ps, ps->stage_layers[slot], section, value);
    }
    return 1; /* other modules' sections */
}

/* Split a list in place at commas; items are trimmed; empty items (a comma at a line's end
 * followed by a continuation line) are skipped. */
static int split_list(char *list, char **items, int max)
{
    int n = 0;
    char *save = NULL;
    for (char *tok = strtok_r(list, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        while (isspace((unsigned char)*tok)) tok++;
        char *end = tok + strlen(tok);
        while (end > tok && isspace((unsigned char)end[-1])) *--end = 0;
        if (!*tok) continue;
        if (n == max) return -1;
        items[n++] = tok;
    }
    return n;
}


static int parse_shape(const char *s, int *c, int *h, int *w)
{
    char extra;
    if (sscanf(s, "%dx%dx%d%c", c, h, w, &extra) != 3) return 0;
    return *c >= 1 && *c <= AVEMO_NN_MAX_DIM && *h >= 1 && *h <= AVEMO_NN_MAX_DIM && *w >= 1 &&
           *w <= AVEMO_NN_MAX_DIM && (size_t)*c * *h * *w <= AVEMO_NN_MAX_ACT;
}

/* Fill one layer from its item ("conv 32 3 same") and its input shape; 0 with a message on error. */
static int build_layer(struct nn_layer *l, const char *item, char *msg, size_t msgsize)
{
    char buf[128];
    char *tok[8];
    int nt = 0;
    snprintf(buf, sizeof buf, "%s", item);
    char *save = NULL;
    for (char *t = strtok_r(buf, " \t", &save); t; t = strtok_r(NULL, " \t", &save)) {
        if (nt == 8) {
            snprintf(msg, msgsize, "too many words");
            return 0;
        }
        tok[nt++] = t;
    }
    if (nt == 0) {
        snprintf(msg, msgsize, "empty layer");
        return 0;
    }
    snprintf(l->spec, sizeof l->spec, "%s", item);
    l->out_c = l->in_c;
    l->out_h = l->in_h;
    l->out_w = l->in_w;
    l->out_seq = l->in_seq;
    int op = nn_layer_op_find(tok[0]);
    if (op < 0) {
        char names[160] = "";
        for (int t = 0; t < NN_OP_COUNT; t++) {
            strncat(names, nn_layer_types[t]->name, sizeof names - strlen(names) - 1);
            strncat(names, ", ", sizeof names - strlen(names) - 1);
        }
        snprintf(msg, msgsize, "unknown layer '%s' (%ssoftmax)", tok[0], names);
        return 0;
    }
    const struct nn_layer_type *type = nn_layer_types[op];
    if (l->in_seq && !type->takes_seq) {
        snprintf(msg, msgsize, "the input is a sequence (%d steps x %d features), not a feature map", l->in_c,
                 l->in_h);
        return 0;
    }
    if (nt < type->min_words || nt > type->max_words) {
        snprintf(msg, msgsize, "wrong number of arguments");
        return 0;
    }
    l->op = (enum nn_op)op;
    if (!type->parse(l, tok, nt, msg, msgsize)) return 0;
    if (nn_out_size(l) > AVEMO_NN_MAX_ACT || l->out_c > AVEMO_NN_MAX_DIM * 64) {
        snprintf(msg, msgsize, "output %dx%dx%d is larger than the limit of %zu floats", l->out_c, l->out_h,
                 l->out_w, AVEMO_NN_MAX_ACT);
        return 0;
    }
    return 1;
}

/* Build stage `slot` of ps into net, starting from shape c x h x w. */
static enum avemo_status build_stage(struct avemo_net *net, struct parse_state *ps, int slot, int stage_index,
                                     int c, int h, int w, size_t *poff, size_t *soff, struct avemo_error *err)
{
    const char *sname = slot == HEAD_SLOT ? "head" : ps->stage_names[slot];
    const char *section = slot == HEAD_SLOT ? "[head]" : "[branch.";
    char *items[AVEMO_NN_MAX_LAYERS + 1];
    int n = split_list(ps->stage_layers[slot], items, AVEMO_NN_MAX_LAYERS + 1);
    if (n < 0 || n > AVEMO_NN_MAX_LAYERS + (slot == HEAD_SLOT))
        return avemo_fail(err, AVEMO_ERR_CONFIG, "%s: %s%s%s: more than %d layers", net->name, section,
                          slot == HEAD_SLOT ? "" : sname, slot == HEAD_SLOT ? "" : "]", AVEMO_NN_MAX_LAYERS);
    struct nn_stage *st = &net->stages[stage_index];
    snprintf(st->name, sizeof st->name, "%s", sname);
    st->c = c;
    st->h = h;
    st->w = w;
    st->first = net->nlayers;
    st->count = 0;
    int seq = 0; /* the current shape is a sequence (after seq or lstm N seq) */
    for (int i = 0; i < n; i++) {
        if (strcmp(items[i], "softmax") == 0 && slot == HEAD_SLOT && i == n - 1) break; /* implied by the loss */
        struct nn_layer *l = &net->layers[net->nlayers];
        memset(l, 0, sizeof *l);
        l->in_c = c;
        l->in_h = h;
        l->in_w = w;
        l->in_seq = seq;
        l->first_of_stage = st->count == 0;
        snprintf(l->name, sizeof l->name, "%.15s.%d", sname, i); /* branch names have <= 15 characters */
        char msg[256];
        if (!build_layer(l, items[i], msg, sizeof msg))
            return avemo_fail(err, AVEMO_ERR_CONFIG, "%s: %s%s%s layer %d '%s': %s", net->name, section,
                              slot == HEAD_SLOT ? "" : sname, slot == HEAD_SLOT ? "" : "]", i + 1, items[i], msg);
        /* a row's parse gives a shape within the limits and parameters only to layers that have them */
        assert(nn_out_size(l) <= AVEMO_NN_MAX_ACT && (nn_layer_has_params(l) || l->w_n + l->b_n == 0));
        l->w_off = *poff;
        l->b_off = *poff + l->w_n;
        *poff += l->w_n + l->b_n;
        if (l->op == NN_BN) {
            l->s_off = *soff;
            *soff += 2 * (size_t)l->in_c;
        }
        if (*poff > AVEMO_NN_MAX_PARAMS)
            return avemo_fail(err, AVEMO_ERR_TOO_LARGE, "%s: more than %zu parameters at layer %s", net->name,
                              AVEMO_NN_MAX_PARAMS, l->name);
        c = l->out_c;
        h = l->out_h;
        w = l->out_w;
        seq = l->out_seq;
        net->nlayers++;
        st->count++;
    }
    return AVEMO_OK;
}

/* Build the branches named by [network] inputs, in that order, and size the concatenation. */
static enum avemo_status build_branches(struct avemo_net *net, struct parse_state *ps, char **inputs, int ni,
                                        size_t *poff, size_t *soff, struct avemo_error *err)
{
    net->ninputs = ni;
    net->concat_size = 0;
    int used[AVEMO_NN_MAX_INPUTS] = {0};
    for (int i = 0; i < ni; i++) {
        char *colon = strchr(inputs[i], ':');
        int c, h, w;
        if (!colon || colon == inputs[i] || !parse_shape(colon + 1, &c, &h, &w)) {
            return avemo_fail(err, AVEMO_ERR_CONFIG,
                              "%s: [network] inputs: '%s' is not NAME:CxHxW (each in 1..%d, at most %zu floats)",
                              net->name, inputs[i], AVEMO_NN_MAX_DIM, AVEMO_NN_MAX_ACT);
        }
        *colon = 0;
        int slot = -1;
        for (int b = 0; b < ps->nbranches; b++)
            if (strcmp(ps->stage_names[b], inputs[i]) == 0) slot = b;
        if (slot < 0) {
            return avemo_fail(err, AVEMO_ERR_CONFIG, "%s: input '%s' has no [branch.%s] section", net->name,
                              inputs[i], inputs[i]);
        }
        if (used[slot]) {
            return avemo_fail(err, AVEMO_ERR_CONFIG, "%s: input '%s' is listed twice", net->name, inputs[i]);
        }
        used[slot] = 1;
        enum avemo_status status = build_stage(net, ps, slot, i, c, h, w, poff, soff, err);
        if (status) return status;
        const struct nn_stage *st = &net->stages[i];
        size_t out = st->count ? nn_out_size(&net->layers[st->first + st->count - 1]) : (size_t)c * h * w;
        net->concat_size += out;
    }
    for (int b = 0; b < ps->nbranches; b++) {
        if (!used[b]) {
            return avemo_fail(err, AVEMO_ERR_CONFIG, "%s: [branch.%s] is not one of the [network] inputs",
                              net->name, ps->stage_names[b]);
        }
    }
    if (net->concat_size > AVEMO_NN_MAX_ACT) {
        return avemo_fail(err, AVEMO_ERR_CONFIG, "%s: the concatenated branches have %zu floats (limit %zu)",
                          net->name, net->concat_size, AVEMO_NN_MAX_ACT);
    }
    return AVEMO_OK;
}

/* The head must end in a dense layer with one output per class; labels name the classes. */
static enum avemo_status finish_head(struct avemo_net *net, struct parse_state *ps, int ni, size_t poff, size_t soff,
                                     struct avemo_error *err)
{
    const struct nn_stage *head = &net->stages[ni];
    const struct nn_layer *last = head->count ? &net->layers[head->first + head->count - 1] : NULL;
    if (!last || last->op != NN_DENSE) {
        return avemo_fail(err, AVEMO_ERR_CONFIG, "%s: [head] must end with 'dense CLASSES' (then optionally "
                          "'softmax')", net->name);
    }
    if (last->out_c < 2 || last->out_c > AVEMO_MAX_CLASSES ||
        (ps->classes && ps->classes != last->out_c)) {
        return avemo_fail(err, AVEMO_ERR_CONFIG, "%s: [head] ends with %d outputs but the network has %d classes "
                          "(2..%d)", net->name, last->out_c, ps->classes ? ps->classes : last->out_c,
                          AVEMO_MAX_CLASSES);
    }
    net->classes = last->out_c;
    net->nparams = poff;
    net->nstats = soff;
    if (ps->labels[0]) {
        char *labels[AVEMO_MAX_CLASSES + 1];
        int nl = split_list(ps->labels, labels, AVEMO_MAX_CLASSES + 1);
        if (nl != net->classes) {
            return avemo_fail(err, AVEMO_ERR_CONFIG, "%s: [network] labels has %d names for %d classes", net->name,
                              nl, net->classes);
        }
        return avemo_net_set_labels(net, (const char *const *)labels, nl, err);
    }
    return AVEMO_OK;
}

enum avemo_status nn_parse_network(struct avemo_net *net, const char *text, struct avemo_error *err)
{
    struct parse_state *ps = calloc(1, sizeof *ps);
    if (!ps) return avemo_fail(err, AVEMO_ERR_NOMEM, "%s: out of memory", net->name);
    avemo_cfg *cfg = NULL;
    enum avemo_status status = avemo_cfg_parse(text, AVEMO_NN_MAX_PIPELINE_BYTES, net->name, &cfg, err);
    if (status) goto done;
    int line = avemo_cfg_each(cfg, on_ini_entry, ps);
    avemo_cfg_free(cfg);
    if (line != 0) {
        status = avemo_fail(err, AVEMO_ERR_CONFIG, "%s: line %d: %s", net->name, line, ps->message);
        goto done;
    }
    char *inputs[AVEMO_NN_MAX_INPUTS + 1];
    int ni = split_list(ps->inputs, inputs, AVEMO_NN_MAX_INPUTS + 1);
    if (ni <= 0 || ni > AVEMO_NN_MAX_INPUTS) {
        status = avemo_fail(err, AVEMO_ERR_CONFIG, "%s: [network] inputs: expected 1 to %d entries NAME:CxHxW",
                            net->name, AVEMO_NN_MAX_INPUTS);
        goto done;
    }
    if (!ps->stage_seen[HEAD_SLOT]) {
        status = avemo_fail(err, AVEMO_ERR_CONFIG, "%s: no [head] section with layers", net->name);
        goto done;
    }
    net->layers = calloc((size_t)(AVEMO_NN_MAX_INPUTS + 1) * (AVEMO_NN_MAX_LAYERS + 1), sizeof *net->layers);
    if (!net->layers) {
        status = avemo_fail(err, AVEMO_ERR_NOMEM, "%s: out of memory", net->name);
        goto done;
    }
    size_t poff = 0, soff = 0;
    status = build_branches(net, ps, inputs, ni, &poff, &soff, err);
    if (status) goto done;
    status = build_stage(net, ps, HEAD_SLOT, ni, (int)net->concat_size, 1, 1, &poff, &soff, err);
    if (status) goto done;
    status = finish_head(net, ps, ni, poff, soff, err);
done:
    free(ps);
    return status;
}
