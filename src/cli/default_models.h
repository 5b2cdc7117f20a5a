/* The shipped models a command uses when --model is not given (classify, explain). */
#ifndef AVEMO_CLI_DEFAULT_MODELS_H
#define AVEMO_CLI_DEFAULT_MODELS_H

#include <avemo/eval.h>

/* The mode's own shipped model in paths[0], the other unimodal ones as fallbacks (for clips
 * without a face or sound) in extra[0..*nextra) pointing into paths; -1 with err when the
 * mode's model is missing. */
int cli_default_models(enum avemo_mode mode, char paths[3][1024], const char *extra[2], int *nextra,
                       struct avemo_error *err);

#endif
