/* Canonical emotion codes for each corpus' labels (the pipeline's label map is in src/model/labels.c). */
#include <avemo/train.h>

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

const char *avemo_corpus_name(enum avemo_corpus corpus)
{
    switch (corpus) {
    case AVEMO_CORPUS_CREMAD: return "crema-d";
    case AVEMO_CORPUS_RAVDESS: return "ravdess";
    case AVEMO_CORPUS_FOLDER: return "folder";
    case AVEMO_CORPUS_MANIFEST: return "manifest";
    case AVEMO_CORPUS_EMODB: return "emodb";
    case AVEMO_CORPUS_CKPLUS: return "ck+";
    case AVEMO_CORPUS_FER2013: return "fer2013";
    default: return "unknown";
    }
}

struct label_alias {
    const char *word;
    const char *code;
};

/* Words used by folder datasets (FER2013, AffectNet-style exports) and manifests. */
static const struct label_alias label_words[] = {
    {"ANG", "ANG"},      {"angry", "ANG"},    {"anger", "ANG"},     {"DIS", "DIS"},     {"disgust", "DIS"},
    {"disgusted", "DIS"}, {"FEA", "FEA"},     {"fear", "FEA"},      {"fearful", "FEA"}, {"HAP", "HAP"},
    {"happy", "HAP"},    {"happiness", "HAP"}, {"NEU", "NEU"},      {"neutral", "NEU"}, {"SAD", "SAD"},
    {"sad", "SAD"},      {"sadness", "SAD"},  {"CAL", "CAL"},       {"calm", "CAL"},    {"SUR", "SUR"},
    {"surprise", "SUR"}, {"surprised", "SUR"}, {"CON", "CON"},      {"contempt", "CON"}, {"BOR", "BOR"},
    {"boredom", "BOR"},  {"bored", "BOR"},
};

/* EmoDB's emotion letter (German initials): Wut, Ekel, Angst, Freude, Trauer, Neutral, Langeweile. */
static const struct label_alias emodb_letters[] = {
    {"W", "ANG"}, {"E", "DIS"}, {"A", "FEA"}, {"F", "HAP"}, {"T", "SAD"}, {"N", "NEU"}, {"L", "BOR"},
};

/* RAVDESS emotion field EE: 01 neutral ... 08 surprised. */
static const char *const ravdess_codes[9] = {NULL, "NEU", "CAL", "HAP", "SAD", "ANG", "FEA", "DIS", "SUR"};

const char *avemo_label_canonical(enum avemo_corpus corpus, const char *label)
{
    if (!label) return NULL;
    if (corpus == AVEMO_CORPUS_RAVDESS && isdigit((unsigned char)label[0]) && isdigit((unsigned char)label[1]) &&
        !label[2]) {
        int e = atoi(label);
        return e >= 1 && e <= 8 ? ravdess_codes[e] : NULL;
    }
    if (corpus == AVEMO_CORPUS_EMODB) {
        for (size_t i = 0; i < sizeof emodb_letters / sizeof emodb_letters[0]; i++)
            if (strcmp(label, emodb_letters[i].word) == 0) return emodb_letters[i].code;
        return NULL;
    }
    for (size_t i = 0; i < sizeof label_words / sizeof label_words[0]; i++)
        if (strcasecmp(label, label_words[i].word) == 0) return label_words[i].code;
    return NULL;
}
