/*
 * avemo nn: a small convolutional network engine in C on OpenBLAS.
 *
 * A network is described by the [network], [branch.NAME] and [head] sections of a
 * pipeline INI file (syntax in docs/nn.md): one branch per input (e.g. audio MFCC
 * 1x40x128, face 3x64x64), their flattened outputs concatenated, then the head,
 * whose last layer is a dense layer with one output per class (softmax is applied
 * by the loss and by avemo_nn_softmax).  A branch may turn its C x F x T feature map into
 * a T-step sequence (`seq`) for LSTM layers (`lstm H [seq] [bidirectional]`, PyTorch's
 * nn.LSTM with batch_first).
 *
 *   struct avemo_net      the model: description, one flat parameter buffer, batch-norm
 *                         running statistics, labels and feature statistics.
 *                         Read-only during inference, so threads can share one
 *                         (after avemo_net_prepare, if it is called).
 *   struct avemo_nn_ctx   one per thread: activations, gradients (training contexts),
 *                         scratch memory and the dropout random generator.
 *   struct avemo_optim    Adam / AdamW / SGD state for one net.
 *
 * Tensors are NCHW float32.  Parameters are stored in layer order (branches in the
 * order of `inputs`, then the head), each layer's weight then bias, with PyTorch's
 * shapes: conv [out][in][k][k], dense [out][in], batch-norm gamma then beta.
 *
 * Training step:
 *   avemo_net_forward_train(net, ctx, inputs, B, &logits, err);   (batch statistics)
 *   avemo_net_backward(net, ctx, labels, &loss_opts, &loss, err);  (sets ctx gradients)
 *   avemo_optim_step(opt, net, ctx, err);
 */
#ifndef AVEMO_NN_H
#define AVEMO_NN_H

#include <avemo/core.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Caps on what a description or a model file may ask for (classes: AVEMO_MAX_CLASSES of core.h). */
#define AVEMO_NN_MAX_INPUTS 4          /* branches */
#define AVEMO_NN_MAX_LAYERS 64         /* layers per branch or head */
#define AVEMO_NN_MAX_DIM 4096          /* channels, height, width, dense units */
#define AVEMO_NN_MAX_KERNEL 15
#define AVEMO_NN_MAX_ACT ((size_t)1 << 24)     /* floats per sample per layer */
#define AVEMO_NN_MAX_PARAMS ((size_t)1 << 26)  /* 64 Mi floats, 256 MiB */
#define AVEMO_NN_MAX_BATCH 4096
#define AVEMO_NN_MAX_PIPELINE_BYTES (1 << 16)
#define AVEMO_NN_NAME_MAX 32

/* ---- random numbers (PCG32): reproducible for a seed, one per context ---- */
struct avemo_rng {
    uint64_t state, inc;
};
void avemo_rng_seed(struct avemo_rng *rng, uint64_t seed, uint64_t stream);
uint32_t avemo_rng_u32(struct avemo_rng *rng);
float avemo_rng_uniform(struct avemo_rng *rng);  /* [0, 1) */
float avemo_rng_normal(struct avemo_rng *rng);   /* mean 0, std 1 */
uint32_t avemo_rng_below(struct avemo_rng *rng, uint32_t n); /* [0, n), unbiased */

/* ---- threads: workers per context (process-wide setting, default 1) ----
 * A context created while the setting is n > 1 runs its layers on n workers (itself and
 * n - 1 threads of its own, at most 8) that share out samples, channels and chunks of the
 * batch; OpenBLAS always runs one thread.  Forwards give the same numbers with any n;
 * training gradients differ from n = 1 only in the order of a float sum, and are the same on
 * every run with the same n. */
enum avemo_status avemo_nn_set_threads(int threads, struct avemo_error *err);
int avemo_nn_threads(void);
/* Sets OpenBLAS to one thread and stops its thread pool, once per process.  The first context
 * does it anyway; a program calls it first thing, because the pthread OpenBLAS's pool spins
 * (about 0.1 s of CPU) from the moment the library is loaded until then. */
void avemo_nn_init(void);

/* The OpenBLAS kernel set in use, e.g. "Haswell" (AVX2) or "SkylakeX" (AVX-512): chosen when
 * OpenBLAS loads, from the CPU or from OPENBLAS_CORETYPE (src/nn/blas.c). */
const char *avemo_nn_blas_core(void);

/* ---- the model ---- */
typedef struct avemo_net avemo_net;

/* Build a network from the [network] sections of a pipeline text (other sections are
 * ignored).  `name` is used in messages (e.g. the file name).  Parameters are zero until
 * avemo_net_init or a load. */
enum avemo_status avemo_net_create(const char *pipeline_text, const char *name, avemo_net **out,
                                   struct avemo_error *err);
enum avemo_status avemo_net_create_file(const char *pipeline_path, avemo_net **out, struct avemo_error *err);
void avemo_net_free(avemo_net *net);

enum avemo_nn_init {
    AVEMO_NN_INIT_DEFAULT = 0, /* He normal for hidden layers, Glorot uniform for the output layer */
    AVEMO_NN_INIT_HE,          /* He (Kaiming) normal, std sqrt(2 / fan_in), everywhere */
    AVEMO_NN_INIT_GLOROT,      /* Glorot (Xavier) uniform, limit sqrt(6 / (fan_in + fan_out)) */
};
/* Weights from the seeded generator, biases 0, batch-norm gamma 1 beta 0, running mean 0 var 1. */
void avemo_net_init(avemo_net *net, enum avemo_nn_init scheme, uint64_t seed);

/* Shape queries. */
int avemo_net_input_count(const avemo_net *net);
/* Name ("audio") and per-sample shape of input i; returns the floats per sample. */
size_t avemo_net_input_shape(const avemo_net *net, int i, const char **name, int *c, int *h, int *w);
int avemo_net_input_index(const avemo_net *net, const char *name); /* -1 when absent */
int avemo_net_classes(const avemo_net *net);
const char *avemo_net_pipeline(const avemo_net *net);  /* the text it was built from */
/* Replace that text (e.g. an inference setting such as face.mirror_test) when it builds the same
 * network; AVEMO_ERR_MISMATCH when it would build another one. */
enum avemo_status avemo_net_set_pipeline(avemo_net *net, const char *text, struct avemo_error *err);

/* The flat parameter buffer and the running statistics (mean then var, per batch-norm layer).
 * avemo_net_params drops what avemo_net_prepare made (the caller may write the parameters). */
float *avemo_net_params(avemo_net *net, size_t *count);
float *avemo_net_stats(avemo_net *net, size_t *count);

/* Layers and parameter tensors, for reports and transfer learning.
 * Layer names are "<branch>.<index>" or "head.<index>", index in the description's list. */
int avemo_net_layer_count(const avemo_net *net);
const char *avemo_net_layer_name(const avemo_net *net, int layer);
/* A short description such as "conv 32 3 same -> 32x40x128". */
void avemo_net_layer_describe(const avemo_net *net, int layer, char *buf, size_t size);
size_t avemo_net_layer_params(const avemo_net *net, int layer, size_t *offset);

/* Labels (class names, one per class) and named feature arrays (e.g. "audio.mean"),
 * all saved in the model file. */
enum avemo_status avemo_net_set_labels(avemo_net *net, const char *const *labels, int count,
                                       struct avemo_error *err);
const char *avemo_net_label(const avemo_net *net, int class_index); /* NULL when unset */
enum avemo_status avemo_net_set_array(avemo_net *net, const char *name, const float *data, size_t count,
                                      struct avemo_error *err);
/* NULL (and *count 0) when absent. */
const float *avemo_net_array(const avemo_net *net, const char *name, size_t *count);

/* Ensembles (src/nn/members.c): a network may carry the parameters of other networks of the
 * same architecture, its members 1..count-1 (member 0 is the network itself), stored as the
 * arrays "ensemble.K.params" and "ensemble.K.stats" of its model file.  Forward passes run one
 * network; the model module averages the members' probabilities (avemo_model_predict_probs),
 * and the ONNX export builds every member. */
#define AVEMO_NN_MAX_MEMBERS 8
#define AVEMO_NN_MEMBER_PREFIX "ensemble."
int avemo_net_member_count(const avemo_net *net); /* 1 when the network is not an ensemble */
/* Store member's parameters as the next member: same layers, shapes and labels, else
 * AVEMO_ERR_MISMATCH naming the first difference. */
enum avemo_status avemo_net_add_member(avemo_net *net, const avemo_net *member, struct avemo_error *err);
/* Member k (1..count-1) as a network of its own, built from net's pipeline text (so that net's
 * contexts serve it), with net's labels.  It reads its parameters in net's arrays, without a
 * copy: run it, do not train it or load parameters into it, and free it (avemo_net_free) before
 * net or net's arrays change. */
enum avemo_status avemo_net_member(const avemo_net *net, int k, avemo_net **out, struct avemo_error *err);
/* Make net the single network of its member k (0..count-1): member k's parameters and
 * statistics become net's own and every member is dropped; the pipeline, arrays and record stay
 * (e.g. one seed of a shipped ensemble, to join it with another model). */
enum avemo_status avemo_net_keep_member(avemo_net *net, int k, struct avemo_error *err);

/* The training record: what a model was trained and validated on, so that evaluation can
 * leave those files out (avemo eval / compare).  One entry per file of the training and
 * validation parts: the part, the SHA-256 of the file's bytes (avemo_sha256_file) and its name
 * relative to the --data it came from ("ravdess/Actor_01/03-01-05-01-01-01-01.wav").
 * Saved in the model file from version 2; a version-1 file has none (avemo_net_has_record 0). */
#define AVEMO_RECORD_MAX_ITEMS 2000000
#define AVEMO_RECORD_NAME_MAX 1024
struct avemo_record_entry {
    int part;                               /* 0 training, 1 validation (enum avemo_split_part) */
    uint8_t sha256[AVEMO_SHA256_SIZE];
    char *name;
};
/* Replace the record by a copy of entries[0..n) (n = 0: a record saying "nothing"). */
enum avemo_status avemo_net_set_record(avemo_net *net, const struct avemo_record_entry *entries, size_t n,
                                       struct avemo_error *err);
/* 1 when the model has a record (it may be empty). */
int avemo_net_has_record(const avemo_net *net);
/* No record any more: what the model learnt from is not known (e.g. it includes a model that
 * has no record), and avemo eval says its figures are unchecked. */
void avemo_net_clear_record(avemo_net *net);
/* The entries, NULL and *n = 0 without a record. */
const struct avemo_record_entry *avemo_net_record(const avemo_net *net, size_t *n);

/* ---- model files (.avm) ---- */
enum avemo_status avemo_net_save(const avemo_net *net, const char *path, struct avemo_error *err);
enum avemo_status avemo_net_load(const char *path, avemo_net **out, struct avemo_error *err);
/* The same for a network that only runs (classify, serve): its training record, which can list
 * tens of thousands of files, is not read (the file is still checked whole, CRC included).
 * Such a net has no record (avemo_net_has_record 0) and avemo_net_save refuses it, so that no
 * model is written without the record its file holds. */
enum avemo_status avemo_net_load_inference(const char *path, avemo_net **out, struct avemo_error *err);
/* Copy parameters and running statistics of the layers whose names start with `prefix`
 * (e.g. "audio." or "" for all) from a model file into net; layers are matched by name and
 * must have the same shapes.  *copied (may be NULL) receives the number of layers copied. */
enum avemo_status avemo_net_load_params(avemo_net *net, const char *path, const char *prefix, int *copied,
                                        struct avemo_error *err);

/* Make ready for inference what every forward would otherwise make again from the parameters:
 * the Winograd transform of the 3x3 kernels (16/9 of their floats), read by the forward of an
 * inference context (training = 0).  For a network that only runs from now on (classify,
 * serve, a teacher); the answers are the same bits.  Whatever changes the parameters through
 * this API (avemo_net_params, avemo_net_init, avemo_net_load_params, avemo_net_keep_member, an
 * optimiser step) drops it again, so a network is at worst slower, never wrong; a pointer from
 * avemo_net_params taken before must not be written after.  An ensemble member reads its
 * ensemble's parameters in place: prepare it after the ensemble's last change. */
enum avemo_status avemo_net_prepare(avemo_net *net, struct avemo_error *err);

/* ---- contexts: one per thread ---- */
typedef struct avemo_nn_ctx avemo_nn_ctx;

/* A context for batches of up to max_batch samples.  training = 0 makes an inference-only
 * context (no gradients, smaller).  seed drives dropout.  It serves net and every network built
 * from the same pipeline text (an ensemble's members, avemo_net_member). */
enum avemo_status avemo_nn_ctx_create(const avemo_net *net, int max_batch, int training, uint64_t seed,
                                      avemo_nn_ctx **out, struct avemo_error *err);
void avemo_nn_ctx_free(avemo_nn_ctx *ctx);
/* Restart the dropout generator (the same seed gives the same masks). */
void avemo_nn_ctx_seed(avemo_nn_ctx *ctx, uint64_t seed);
/* Turn dropout off (0) or on (1, default) in training forwards. */
void avemo_nn_ctx_set_dropout(avemo_nn_ctx *ctx, int enabled);
/* Weight of each training forward's batch statistics in the running averages (0 or out of
 * (0, 1] restores PyTorch's 0.1).  Setting 1/k before the k-th of K batches leaves the plain
 * mean of the K batches' statistics: how running statistics are recomputed after training. */
void avemo_nn_ctx_set_bn_momentum(avemo_nn_ctx *ctx, float momentum);

/* Inference: batch-norm uses running statistics, dropout is off.  inputs[i] holds batch
 * samples of input i (NCHW).  *logits points to batch x classes floats inside ctx, valid
 * until the next call. */
enum avemo_status avemo_net_forward(const avemo_net *net, avemo_nn_ctx *ctx, const float *const *inputs,
                                    int batch, const float **logits, struct avemo_error *err);
/* Inference where the inputs whose bit is set in shared_inputs (bit i = input i) hold ONE
 * sample that goes with every sample of the others: their branch runs once, not batch times
 * (a clip's audio with each of its face frames).  Same logits as repeating the sample. */
enum avemo_status avemo_net_forward_shared(const avemo_net *net, avemo_nn_ctx *ctx, const float *const *inputs,
                                           int batch, unsigned shared_inputs, const float **logits,
                                           struct avemo_error *err);
/* Training forward: batch statistics (and running averages updated in net), dropout on.
 * The inputs must stay valid until avemo_net_backward. */
enum avemo_status avemo_net_forward_train(avemo_net *net, avemo_nn_ctx *ctx, const float *const *inputs,
                                          int batch, const float **logits, struct avemo_error *err);

/* Softmax cross-entropy with the semantics of torch.nn.CrossEntropyLoss(weight=, label_smoothing=). */
struct avemo_nn_loss {
    const float *class_weights; /* classes floats, NULL = all 1 */
    float label_smoothing;      /* 0..1 */
    /* mixup: when mix_labels is set, the loss is mix_lambda * loss(labels)
     * + (1 - mix_lambda) * loss(mix_labels) (inputs mixed the same way by the caller) */
    const int *mix_labels;
    float mix_lambda;           /* 0..1 */
    /* distillation: when soft_targets (batch x classes probabilities, e.g. a teacher model's) is
     * set, the loss is (1 - soft_weight) * the loss above + soft_weight * the mean over samples of
     * -sum_c q_c log p_c, torch.nn.CrossEntropyLoss with probability targets (no class weights) */
    const float *soft_targets;
    float soft_weight;          /* 0..1 */
};
/* Loss of the last forward's logits (either mode). */
enum avemo_status avemo_net_loss(const avemo_net *net, avemo_nn_ctx *ctx, const int *labels,
                                 const struct avemo_nn_loss *opt, float *loss, struct avemo_error *err);
/* Loss and backward of the last forward (training context): sets every gradient. */
enum avemo_status avemo_net_backward(const avemo_net *net, avemo_nn_ctx *ctx, const int *labels,
                                     const struct avemo_nn_loss *opt, float *loss, struct avemo_error *err);
/* The flat gradient buffer (same order as the parameters). */
float *avemo_nn_ctx_grads(avemo_nn_ctx *ctx, size_t *count);

/* Row-wise softmax of batch x classes logits (in may equal out). */
void avemo_nn_softmax(const float *logits, int batch, int classes, float *probs);

/* ---- looking inside: activations and gradients of an inference pass ----
 * What explanations are built on (Grad-CAM: src/model/gradcam.c).  On a context created with
 * training = 1 (the gradients need its buffers):
 *
 *   int layer = avemo_net_layer_find(net, "face.10");
 *   avemo_nn_ctx_keep_gradient(ctx, layer, err);               once, before the backwards
 *   avemo_net_forward(net, ctx, inputs, batch, &logits, err);   inference: running statistics,
 *                                                                no dropout (not a shared forward)
 *   dlogits[n * classes + target] = 1 (others 0);               d score / d logits: the caller's choice
 *   avemo_net_backward_logits(net, ctx, dlogits, err);          no loss, no optimiser step
 *   avemo_nn_ctx_activation(ctx, layer, &a, err);               a.data: batch x c x h x w
 *   avemo_nn_ctx_gradient(ctx, layer, &g, err);                 d score / d activation, same shape
 *
 * A batch norm followed by a ReLU has no output of its own (one pass writes the ReLU's): ask for
 * the ReLU.  In an inference-only context a convolution followed by batch norm or ReLU is fused
 * too: its activation can be read on a training context only. */
struct avemo_nn_tensor {
    const float *data;   /* inside the context, valid until its next forward or backward */
    int batch, c, h, w;  /* NCHW; batch is 1 for an input shared by the batch */
};
int avemo_net_layer_find(const avemo_net *net, const char *name);   /* -1 when absent */
const char *avemo_net_layer_type(const avemo_net *net, int layer);   /* "conv", "bn", "relu" ...; NULL */
int avemo_net_layer_input(const avemo_net *net, int layer);          /* its branch's input, -1 for the head */
/* Keep the gradient of a layer's output in every later backward (either kind). */
enum avemo_status avemo_nn_ctx_keep_gradient(avemo_nn_ctx *ctx, int layer, struct avemo_error *err);
/* Backward of the last forward (either mode) from a gradient of its logits (batch x classes)
 * chosen by the caller: sets the parameter gradients and the kept layer gradients; parameters
 * and running statistics are not changed. */
enum avemo_status avemo_net_backward_logits(const avemo_net *net, avemo_nn_ctx *ctx, const float *dlogits,
                                            struct avemo_error *err);
enum avemo_status avemo_nn_ctx_activation(const avemo_nn_ctx *ctx, int layer, struct avemo_nn_tensor *t,
                                          struct avemo_error *err);
enum avemo_status avemo_nn_ctx_gradient(const avemo_nn_ctx *ctx, int layer, struct avemo_nn_tensor *t,
                                        struct avemo_error *err);

/* The head's input is the branches' outputs side by side, in input order.  Floats of input i's
 * branch output and (offset) where they start in a row of the head input; 0 when out of range. */
size_t avemo_net_branch_features(const avemo_net *net, int input, size_t *offset);
size_t avemo_net_head_inputs(const avemo_net *net);  /* floats per sample */
/* The head input of the last forward (*batch rows of avemo_net_head_inputs floats). */
const float *avemo_nn_ctx_head_input(const avemo_nn_ctx *ctx, int *batch);
/* Run the head alone on a head input of the caller (e.g. one branch's features replaced, to see
 * what the decision owes that branch); inference mode.  The branches' activations are stale after. */
enum avemo_status avemo_net_forward_head(const avemo_net *net, avemo_nn_ctx *ctx, const float *head_input, int batch,
                                         const float **logits, struct avemo_error *err);

/* ---- optimisers ---- */
enum avemo_optim_kind { AVEMO_OPTIM_ADAM = 0, AVEMO_OPTIM_ADAMW, AVEMO_OPTIM_SGD };
struct avemo_optim_config {
    enum avemo_optim_kind kind;
    float lr;            /* learning rate */
    float beta1, beta2;  /* Adam moments (0 -> 0.9, 0.999) */
    float eps;           /* Adam epsilon (0 -> 1e-8) */
    float weight_decay;  /* Adam/SGD: L2 added to the gradient; AdamW: decoupled */
    float momentum;      /* SGD */
    float clip_norm;     /* > 0: clip gradients to this global L2 norm first */
};
typedef struct avemo_optim avemo_optim;
enum avemo_status avemo_optim_create(const avemo_net *net, const struct avemo_optim_config *cfg,
                                     avemo_optim **out, struct avemo_error *err);
void avemo_optim_free(avemo_optim *opt);
void avemo_optim_set_lr(avemo_optim *opt, float lr);
/* Freeze (1) or unfreeze (0) the layers whose names start with prefix (e.g. "face.");
 * frozen parameters are not updated.  Fails when no layer with parameters matches. */
enum avemo_status avemo_optim_freeze(avemo_optim *opt, const avemo_net *net, const char *prefix, int frozen,
                                     struct avemo_error *err);
/* One update of net's parameters from ctx's gradients (clipped first when configured).
 * *grad_norm (may be NULL) receives the global norm before clipping. */
enum avemo_status avemo_optim_step(avemo_optim *opt, avemo_net *net, avemo_nn_ctx *ctx, float *grad_norm,
                                   struct avemo_error *err);

/* The optimiser's state (step count, Adam moments or SGD momentum) for resuming a training run:
 * a small file with a magic, a version, the optimiser kind, the parameter count and a CRC-32.
 * Learning rate and frozen layers are the caller's settings and are not saved. */
enum avemo_status avemo_optim_save(const avemo_optim *opt, const char *path, struct avemo_error *err);
enum avemo_status avemo_optim_load(avemo_optim *opt, const char *path, struct avemo_error *err);

/* ---- ONNX export ---- */
/* The network in inference mode as an ONNX model (opset 13, ONNX's onnx.proto): one float32 input
 * per branch named after it ("audio" [N, 1, 40, 128], ...), the normalised features the network
 * takes; outputs "logits" and "probabilities" [N, classes]; metadata "labels" and "pipeline".
 * Batch norm uses the running statistics, dropout is the identity.  *data is malloc'ed. */
enum avemo_status avemo_net_onnx_serialize(const avemo_net *net, uint8_t **data, size_t *size,
                                           struct avemo_error *err);
enum avemo_status avemo_net_export_onnx(const avemo_net *net, const char *path, struct avemo_error *err);

#ifdef __cplusplus
}
#endif
#endif /* AVEMO_NN_H */
