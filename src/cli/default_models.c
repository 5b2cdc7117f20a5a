/* The shipped models a command uses when --model is not given. */
#include "cli/default_models.h"

int cli_default_models(enum avemo_mode mode, char paths[3][1024], const char *extra[2], int *nextra,
                       struct avemo_error *err)
{
    if (avemo_default_model(mode, paths[0], sizeof paths[0], err)) return -1;
    *nextra = 0;
    for (int m = AVEMO_MODE_AUDIO; m <= AVEMO_MODE_FACE; m++)
        if (m != (int)mode && avemo_default_model((enum avemo_mode)m, paths[1 + *nextra], sizeof paths[0], NULL) == AVEMO_OK) {
            extra[*nextra] = paths[1 + *nextra];
            (*nextra)++;
        }
    return 0;
}
