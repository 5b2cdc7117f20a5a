/* avemo: audio-visual emotion recognition.  Include this one header to use the library. */
#ifndef AVEMO_AVEMO_H
#define AVEMO_AVEMO_H

#include <avemo/core.h>
#include <avemo/media.h>
#include <avemo/nn.h>
#include <avemo/audio.h>
#include <avemo/vision.h>
#include <avemo/serve.h>

#endif /* AVEMO_AVEMO_H */
