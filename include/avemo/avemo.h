/*
 * avemo: audio-visual emotion recognition.  Include this one header to use the library.
 *
 * Basic usage: open a classifier, classify a file, print the label.
 * (tests/eval/basic_usage.c is this block as a program; ctest builds and runs it.)
 *
 *     #include <avemo/avemo.h>
 *     #include <stdio.h>
 *
 *     int main(int argc, char **argv)
 *     {
 *         struct avemo_error err = {0};
 *         avemo_classifier *clf = NULL;      // a model (.avm), read-only, shared by threads
 *         avemo_classify_ctx *ctx = NULL;    // one per thread
 *         struct avemo_prediction pred;
 *         if (argc != 3) return 2;           // MODEL.avm FILE
 *         enum avemo_status st = avemo_classifier_open(argv[1], NULL, &clf, &err);
 *         if (!st) st = avemo_classify_ctx_new(clf, &ctx, &err);
 *         if (!st) st = avemo_classify_file(ctx, argv[2], avemo_classifier_default_mode(clf), &pred, &err);
 *         if (st) fprintf(stderr, "%s\n", err.message);   // names the file and the cause
 *         else printf("%s %.2f\n", pred.labels[pred.label], pred.confidence);
 *         avemo_classify_ctx_free(ctx);
 *         avemo_classifier_close(clf);
 *         return st ? 1 : 0;
 *     }
 *
 * With the audio-visual model, a wav or a photo is answered by its companions (the unimodal models
 * beside it, or the shipped ones: see avemo_classifier_options).  avemo_default_model() gives the
 * shipped model of a mode, found relative to the install prefix (avemo_data_dir()).
 *
 * Link with `pkg-config --cflags --libs avemo`, or in CMake `find_package(avemo)` and
 * `target_link_libraries(app PRIVATE avemo::avemo)`.  The modules, lowest first:
 *   core.h    status codes, errors, configuration (avemo_cfg), small helpers
 *   media.h   decoding clips, audio files and images with FFmpeg
 *   audio.h   MFCC / log-mel features (librosa's)
 *   vision.h  face detection (Viola-Jones) and crops
 *   nn.h      the network engine
 *   model.h   a trained model: pipeline, inputs, predictions; metrics and plots
 *   train.h   datasets, splits, features, training
 *   eval.h    the classifier and evaluation on labelled data
 *   serve.h   the HTTP service
 */
#ifndef AVEMO_AVEMO_H
#define AVEMO_AVEMO_H

#include <avemo/core.h>
#include <avemo/media.h>
#include <avemo/audio.h>
#include <avemo/vision.h>
#include <avemo/nn.h>
#include <avemo/model.h>
#include <avemo/train.h>
#include <avemo/eval.h>
#include <avemo/serve.h>

#endif /* AVEMO_AVEMO_H */
