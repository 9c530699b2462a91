// What the trainers tell the user about an image folder's left-out files.
#ifndef VQGPT_CLI_FOLDER_REPORT_H
#define VQGPT_CLI_FOLDER_REPORT_H

#include "data/folder.h"

// One "warning:" line per skipped file naming it and why, a count of them against all image
// files, and the number of duplicate paths (links) to images listed once. Nothing when clean.
void cli_report_folder(const char *command, const char *dir, const image_folder *f);

#endif
