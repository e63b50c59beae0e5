/* Tests for axon/dataset.h: the CSV reader's edge cases, the three
 * layouts (nifti-dir, nnunet, openmind) on small trees written at test
 * time, their error messages (file, key, column), and the by-subject,
 * seeded train/validation split. Listing a dataset does not read images,
 * so the trees hold empty files. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "test_util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "axon/dataset.h"
#include "axon/log.h"
#include "axon/status.h"

/* Create every folder of `path` and write `text` (NULL: empty). */
static void put(const char *path, const char *text) {
    char tmp[1024];
    snprintf(tmp, sizeof tmp, "%s", path);
    for (char *s = tmp + 1; *s; s++)
        if (*s == '/') {
            *s = '\0';
            mkdir(tmp, 0777);
            *s = '/';
        }
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    if (text) fputs(text, f);
    fclose(f);
}

static ax_dataset *open_ok(const char *format, const char *root, const char *glob) {
    ax_dataset_opts o = ax_dataset_opts_default();
    o.format = format;
    o.root = root;
    o.glob = glob;
    ax_dataset *ds = NULL;
    assert_ok(ax_dataset_open(&ds, &o));
    return ds;
}

static ax_status open_err(const char *format, const char *root) {
    ax_dataset_opts o = ax_dataset_opts_default();
    o.format = format;
    o.root = root;
    ax_dataset *ds = (ax_dataset *)1;
    ax_status st = ax_dataset_open(&ds, &o);
    assert_int_not_equal(st, AX_OK);
    assert_null(ds);
    return st;
}

/* ---- CSV ------------------------------------------------------------------------ */

static ax_csv *parse_ok(const char *text) {
    ax_csv *c = NULL;
    assert_ok(ax_csv_parse(&c, text, strlen(text), "t.csv"));
    return c;
}

static void test_csv_basic(void **state) {
    (void)state;
    ax_csv *c = parse_ok("a,b,c\n1,2,3\n4,,6\n");
    assert_int_equal(c->n_cols, 3);
    assert_int_equal(c->n_rows, 2);
    assert_string_equal(c->header[1], "b");
    assert_string_equal(ax_csv_cell(c, 0, 2), "3");
    assert_string_equal(ax_csv_cell(c, 1, 1), "");
    assert_int_equal(ax_csv_column(c, "c"), 2);
    assert_int_equal(ax_csv_column(c, "d"), -1);
    assert_string_equal(ax_csv_cell(c, 0, -1), "");
    assert_string_equal(ax_csv_cell(c, 9, 0), "");
    assert_int_equal(c->lines[1], 3);
    ax_csv_free(c);
    ax_csv_free(NULL);
}

static void test_csv_quotes(void **state) {
    (void)state;
    /* BOM, CRLF, quoted commas, doubled quotes, a newline inside quotes,
     * blank lines, an empty quoted field, no final newline */
    const char *text = "\xEF\xBB\xBFimage_path,note,score\r\n"
                       "\"a,b.nii.gz\",\"say \"\"hi\"\"\",1.5\r\n"
                       "\r\n"
                       "plain,\"two\r\nlines\",\"\"\r\n"
                       "\n"
                       "last,x,3";
    ax_csv *c = parse_ok(text);
    assert_int_equal(c->n_rows, 3);
    assert_string_equal(c->header[0], "image_path");
    assert_string_equal(ax_csv_cell(c, 0, 0), "a,b.nii.gz");
    assert_string_equal(ax_csv_cell(c, 0, 1), "say \"hi\"");
    assert_string_equal(ax_csv_cell(c, 0, 2), "1.5");
    assert_string_equal(ax_csv_cell(c, 1, 1), "two\r\nlines");
    assert_string_equal(ax_csv_cell(c, 1, 2), "");
    assert_string_equal(ax_csv_cell(c, 2, 0), "last");
    assert_string_equal(ax_csv_cell(c, 2, 2), "3");
    assert_int_equal(c->lines[0], 2);
    assert_int_equal(c->lines[1], 4);
    assert_int_equal(c->lines[2], 7);
    ax_csv_free(c);

    c = parse_ok("x\n\"\"\n");
    assert_int_equal(c->n_rows, 1); /* a quoted empty field is a row, not a blank line */
    assert_string_equal(ax_csv_cell(c, 0, 0), "");
    ax_csv_free(c);
}

static void test_csv_errors(void **state) {
    (void)state;
    ax_csv *c = (ax_csv *)1;
    assert_int_equal(ax_csv_parse(&c, "a,b\n1,2\n3\n", 10, "t.csv"), AX_ERR_FORMAT);
    assert_null(c);
    assert_msg("t.csv:3: 1 fields, but the header has 2");
    assert_int_equal(ax_csv_parse(&c, "a,b\n1,2,3\n", 10, "t.csv"), AX_ERR_FORMAT);
    assert_msg("t.csv:2: 3 fields");
    const char *t = "a,b\n\"open,2\n";
    assert_int_equal(ax_csv_parse(&c, t, strlen(t), "t.csv"), AX_ERR_FORMAT);
    assert_msg("unterminated quoted field (opened on line 2)");
    t = "a,b\n\"x\"y,2\n";
    assert_int_equal(ax_csv_parse(&c, t, strlen(t), "t.csv"), AX_ERR_FORMAT);
    assert_msg("t.csv:2: unexpected character 'y' after a closing quote");
    t = "a,b\nx\"y,2\n";
    assert_int_equal(ax_csv_parse(&c, t, strlen(t), "t.csv"), AX_ERR_FORMAT);
    assert_msg("a quote inside an unquoted field");
    assert_int_equal(ax_csv_parse(&c, "", 0, "t.csv"), AX_ERR_FORMAT);
    assert_msg("t.csv: empty file");
    assert_int_equal(ax_csv_parse(&c, "\n\n", 2, "t.csv"), AX_ERR_FORMAT);

    c = parse_ok("image_path,modality\n");
    assert_int_equal(c->n_rows, 0);
    const char *need[] = {"image_path", "modality", "image_quality_score"};
    assert_ok(ax_csv_require(c, need, 2));
    assert_int_equal(ax_csv_require(c, need, 3), AX_ERR_FORMAT);
    assert_msg("t.csv: missing required column 'image_quality_score'");
    ax_csv_free(c);

    assert_int_equal(ax_csv_read(&c, tpath("no.csv")), AX_ERR_NOT_FOUND);
    assert_msg("no.csv");
    put(tpath("ok.csv"), "a\n1\n");
    assert_ok(ax_csv_read(&c, tpath("ok.csv")));
    assert_string_equal(c->path, tpath("ok.csv"));
    ax_csv_free(c);
}

/* ---- nifti-dir ------------------------------------------------------------------- */

static void test_nifti_dir(void **state) {
    (void)state;
    put(tpath("nd/sub-01/anat/sub-01_T1w.nii.gz"), NULL);
    put(tpath("nd/sub-01/anat/sub-01_T2w.nii"), NULL);
    put(tpath("nd/sub-02/ses-1/anat/sub-02_ses-1_T1w.nii.gz"), NULL);
    put(tpath("nd/extra/scan.nii.gz"), NULL);
    put(tpath("nd/notes.txt"), "not an image");
    put(tpath("nd/extra/scan.nii.gz.json"), "{}");
    put(tpath("nd/.hidden/x.nii.gz"), NULL);

    ax_dataset *ds = open_ok("nifti-dir", tpath("nd"), NULL);
    assert_int_equal(ax_dataset_size(ds), 4);
    assert_string_equal(ax_dataset_format(ds), "nifti-dir");
    assert_int_equal(ax_dataset_channels(ds), 1);
    assert_string_equal(ax_dataset_channel_name(ds, 0), "0");
    assert_int_equal(ax_dataset_n_labels(ds), 0);
    const ax_dataset_case *c = ax_dataset_case_at(ds, 0); /* sorted by relative path */
    assert_string_equal(c->name, "extra_scan");
    assert_string_equal(c->subject, "extra_scan");
    assert_string_equal(c->images[0], tpath("nd/extra/scan.nii.gz"));
    c = ax_dataset_case_at(ds, 1);
    assert_string_equal(c->name, "sub-01_anat_sub-01_T1w");
    assert_string_equal(c->subject, "sub-01");
    assert_int_equal(c->n_images, 1);
    assert_null(c->label);
    assert_true(isnan(c->quality));
    c = ax_dataset_case_at(ds, 2);
    assert_string_equal(c->subject, "sub-01");
    c = ax_dataset_case_at(ds, 3);
    assert_string_equal(c->name, "sub-02_ses-1_anat_sub-02_ses-1_T1w");
    assert_string_equal(c->subject, "sub-02");
    assert_null(ax_dataset_case_at(ds, 4));
    ax_dataset_free(ds);

    ds = open_ok("nifti-dir", tpath("nd"), "*T1w.nii.gz");
    assert_int_equal(ax_dataset_size(ds), 2);
    ax_dataset_free(ds);
    ds = open_ok("nifti-dir", tpath("nd"), "sub-0[2-9]/*");
    assert_int_equal(ax_dataset_size(ds), 1);
    ax_dataset_free(ds);

    ax_dataset_opts o = ax_dataset_opts_default();
    o.format = "nifti-dir";
    o.root = tpath("nd");
    o.glob = "*.mha";
    ax_dataset *bad = (ax_dataset *)1;
    assert_int_equal(ax_dataset_open(&bad, &o), AX_ERR_NOT_FOUND);
    assert_null(bad);
    assert_msg("no .nii/.nii.gz file matches '*.mha' (4 NIfTI files in all)");

    put(tpath("empty/readme.txt"), "x");
    assert_int_equal(open_err("nifti-dir", tpath("empty")), AX_ERR_NOT_FOUND);
    assert_msg("empty: no .nii/.nii.gz files");
    assert_int_equal(open_err("nifti-dir", tpath("nothere")), AX_ERR_NOT_FOUND);
    assert_msg("nothere: not a folder");
    assert_int_equal(open_err("dicom", tpath("nd")), AX_ERR_INVALID);
    assert_msg("unknown dataset format 'dicom' (nifti-dir, nnunet, openmind)");

    /* a_b.nii and a/b.nii would both be case "a_b" */
    put(tpath("clash/a_b.nii"), NULL);
    put(tpath("clash/a/b.nii.gz"), NULL);
    assert_int_equal(open_err("nifti-dir", tpath("clash")), AX_ERR_FORMAT);
    assert_msg("two cases are named 'a_b'");
}

/* ---- nnunet ------------------------------------------------------------------------ */

static const char *nn_json = "{\"channel_names\": {\"0\": \"T1\", \"1\": \"FLAIR\"},"
                             " \"labels\": {\"background\": 0, \"lesion\": 1, \"edema\": 2},"
                             " \"numTraining\": 3, \"file_ending\": \".nii.gz\"}";

static void make_nnunet(const char *root, const char *json) {
    char p[1024];
    snprintf(p, sizeof p, "%s/dataset.json", root);
    put(p, json);
    const char *tr[] = {"case_001", "case_002", "case_010"};
    for (int i = 0; i < 3; i++) {
        for (int ch = 0; ch < 2; ch++) {
            snprintf(p, sizeof p, "%s/imagesTr/%s_%04d.nii.gz", root, tr[i], ch);
            put(p, NULL);
        }
        snprintf(p, sizeof p, "%s/labelsTr/%s.nii.gz", root, tr[i]);
        put(p, NULL);
    }
    for (int ch = 0; ch < 2; ch++) {
        snprintf(p, sizeof p, "%s/imagesTs/test_001_%04d.nii.gz", root, ch);
        put(p, NULL);
    }
    snprintf(p, sizeof p, "%s/imagesTr/case_001.json", root); /* other endings are ignored */
    put(p, "{}");
}

static void test_nnunet(void **state) {
    (void)state;
    make_nnunet(tpath("nn"), nn_json);
    ax_dataset *ds = open_ok("nnunet", tpath("nn"), NULL);
    assert_int_equal(ax_dataset_size(ds), 4);
    assert_int_equal(ax_dataset_channels(ds), 2);
    assert_string_equal(ax_dataset_channel_name(ds, 1), "FLAIR");
    assert_int_equal(ax_dataset_n_labels(ds), 3);
    assert_string_equal(ax_dataset_label_name(ds, 2), "edema");
    assert_int_equal(ax_dataset_label_id(ds, 2), 2);
    const ax_dataset_case *c = ax_dataset_case_at(ds, 2);
    assert_string_equal(c->name, "case_010");
    assert_int_equal(c->n_images, 2);
    assert_string_equal(c->images[0], tpath("nn/imagesTr/case_010_0000.nii.gz"));
    assert_string_equal(c->images[1], tpath("nn/imagesTr/case_010_0001.nii.gz"));
    assert_string_equal(c->label, tpath("nn/labelsTr/case_010.nii.gz"));
    assert_false(c->test);
    c = ax_dataset_case_at(ds, 3);
    assert_string_equal(c->name, "test_001");
    assert_true(c->test);
    assert_null(c->label);
    ax_dataset_free(ds);

    ax_dataset_opts o = ax_dataset_opts_default();
    o.format = "nnunet";
    o.root = tpath("nn");
    o.include_test = false;
    assert_ok(ax_dataset_open(&ds, &o));
    assert_int_equal(ax_dataset_size(ds), 3);
    ax_dataset_free(ds);

    /* v1's "modality" key */
    make_nnunet(tpath("nn1"), "{\"modality\": {\"0\": \"T1\", \"1\": \"T2\"}, \"labels\": {\"background\": 0},"
                              " \"numTraining\": 3, \"file_ending\": \".nii.gz\"}");
    ds = open_ok("nnunet", tpath("nn1"), NULL);
    assert_string_equal(ax_dataset_channel_name(ds, 1), "T2");
    ax_dataset_free(ds);
}

static void test_nnunet_errors(void **state) {
    (void)state;
    make_nnunet(tpath("e1"), nn_json);
    unlink(tpath("e1/labelsTr/case_002.nii.gz"));
    assert_int_equal(open_err("nnunet", tpath("e1")), AX_ERR_NOT_FOUND);
    assert_msg("case 'case_002': missing label file ");
    assert_msg("e1/labelsTr/case_002.nii.gz");

    make_nnunet(tpath("e2"), nn_json);
    unlink(tpath("e2/imagesTr/case_010_0001.nii.gz"));
    assert_int_equal(open_err("nnunet", tpath("e2")), AX_ERR_NOT_FOUND);
    assert_msg("case 'case_010': missing channel 1 (");
    assert_msg("e2/imagesTr/case_010_0001.nii.gz)");

    make_nnunet(tpath("e3"), nn_json);
    put(tpath("e3/imagesTr/case_011_0000.nii.gz"), NULL);
    put(tpath("e3/imagesTr/case_011_0001.nii.gz"), NULL);
    put(tpath("e3/labelsTr/case_011.nii.gz"), NULL);
    assert_int_equal(open_err("nnunet", tpath("e3")), AX_ERR_FORMAT);
    assert_msg("e3/dataset.json: numTraining is 3 but ");
    assert_msg("imagesTr has 4 cases");

    make_nnunet(tpath("e4"), "{\"channel_names\": {\"0\": \"T1\"},\n \"labels\": {\"background\": 0,}}");
    assert_int_equal(open_err("nnunet", tpath("e4")), AX_ERR_FORMAT);
    assert_msg("e4/dataset.json:2:");
    assert_msg("bad JSON");

    make_nnunet(tpath("e5"), "{\"channel_names\": {\"0\": \"T1\", \"1\": \"T2\"}, \"labels\": {\"background\": 0},"
                             " \"file_ending\": \".nii.gz\"}");
    assert_int_equal(open_err("nnunet", tpath("e5")), AX_ERR_FORMAT);
    assert_msg("e5/dataset.json: key 'numTraining' is missing");

    make_nnunet(tpath("e6"), "{\"channel_names\": {\"0\": \"T1\", \"1\": \"T2\"}, \"labels\": {\"background\": 0},"
                             " \"numTraining\": 3, \"file_ending\": \".png\"}");
    assert_int_equal(open_err("nnunet", tpath("e6")), AX_ERR_UNSUPPORTED);
    assert_msg("'file_ending' \".png\"");

    make_nnunet(tpath("e7"), "{\"channel_names\": {\"0\": \"T1\", \"1\": \"T2\"}, \"labels\": {\"background\": 0,"
                             " \"whole\": [1, 2]}, \"numTraining\": 3, \"file_ending\": \".nii.gz\"}");
    assert_int_equal(open_err("nnunet", tpath("e7")), AX_ERR_UNSUPPORTED);
    assert_msg("'labels'.\"whole\": region-based");

    make_nnunet(tpath("e8"), "{\"channel_names\": {\"0\": \"T1\", \"2\": \"T2\"}, \"labels\": {\"background\": 0},"
                             " \"numTraining\": 3, \"file_ending\": \".nii.gz\"}");
    assert_int_equal(open_err("nnunet", tpath("e8")), AX_ERR_FORMAT);
    assert_msg("'channel_names' key \"2\"");

    make_nnunet(tpath("e9"), "{\"channel_names\": {\"0\": \"T1\"}, \"labels\": {\"background\": 0},"
                             " \"numTraining\": 3, \"file_ending\": \".nii.gz\"}");
    assert_int_equal(open_err("nnunet", tpath("e9")), AX_ERR_FORMAT);
    assert_msg("case_001_0001.nii.gz: channel 1, but dataset.json names 1 channel");

    make_nnunet(tpath("e10"), nn_json);
    put(tpath("e10/imagesTr/nochannel.nii.gz"), NULL);
    assert_int_equal(open_err("nnunet", tpath("e10")), AX_ERR_FORMAT);
    assert_msg("nochannel.nii.gz: image name lacks the channel suffix _XXXX");

    make_nnunet(tpath("e11"), "{\"channel_names\": {\"0\": \"T1\", \"1\": \"T2\"}, \"labels\": {\"tumour\": 1},"
                              " \"numTraining\": 3, \"file_ending\": \".nii.gz\"}");
    assert_int_equal(open_err("nnunet", tpath("e11")), AX_ERR_FORMAT);
    assert_msg("no background");

    put(tpath("e12/imagesTr/x_0000.nii.gz"), NULL);
    assert_int_equal(open_err("nnunet", tpath("e12")), AX_ERR_NOT_FOUND);
    assert_msg("e12/dataset.json: no such file");
}

/* ---- openmind ---------------------------------------------------------------------- */

static const char *om_header = "image_path,anon_mask_path,anat_mask_path,modality,unique_id,image_quality_score,age\n";

static void make_openmind(const char *root) {
    const char *imgs[] = {"OpenMind/ds000001/sub-01/anat/sub-01_T1w.nii.gz",
                          "OpenMind/ds000001/sub-01/anat/sub-01_T2w.nii.gz",
                          "OpenMind/ds000001/sub-02/ses-1/anat/sub-02_ses-1_T1w.nii.gz",
                          "OpenMind/ds000002/sub-01/anat/sub-01_FLAIR.nii.gz",
                          "OpenMind/ds000002/sub-03/dwi/sub-03_ADC.nii.gz"};
    char p[1024];
    for (int i = 0; i < 5; i++) {
        snprintf(p, sizeof p, "%s/%s", root, imgs[i]);
        put(p, NULL);
        size_t n = strlen(p) - 7;
        snprintf(p + n, sizeof p - n, "__Data/fb_mask.nii.gz");
        put(p, NULL);
        snprintf(p + n, sizeof p - n, "__Data/deface_mask.nii.gz");
        put(p, NULL);
    }
    char csv[4096];
    snprintf(csv, sizeof csv,
             "%s"
             "OpenMind/ds000001/sub-01/anat/sub-01_T1w.nii.gz,"
             "OpenMind/ds000001/sub-01/anat/sub-01_T1w__Data/deface_mask.nii.gz,"
             "OpenMind/ds000001/sub-01/anat/sub-01_T1w__Data/fb_mask.nii.gz,T1w,u1,1.5,30\r\n"
             "ds000001/sub-01/anat/sub-01_T2w.nii.gz,,,T2w,u2,2.75,30\r\n"
             "\"OpenMind/ds000001/sub-02/ses-1/anat/sub-02_ses-1_T1w.nii.gz\",,,\"T1w\",u3,3.5,\"41\"\r\n"
             "OpenMind/ds000002/sub-01/anat/sub-01_FLAIR.nii.gz,,,FLAIR,u4,,\r\n"
             "OpenMind/ds000002/sub-03/dwi/sub-03_ADC.nii.gz,,,ADC,u5,1.0,\"7,5\"\r\n",
             om_header);
    snprintf(p, sizeof p, "%s/openneuro_metadata.csv", root);
    put(p, csv);
}

static void test_openmind(void **state) {
    (void)state;
    make_openmind(tpath("om"));
    ax_dataset *ds = open_ok("openmind", tpath("om"), NULL);
    assert_int_equal(ax_dataset_size(ds), 5);
    const ax_dataset_case *c = ax_dataset_case_at(ds, 0);
    assert_string_equal(c->name, "ds000001_sub-01_T1w");
    assert_string_equal(c->subject, "ds000001/sub-01");
    assert_string_equal(c->images[0], tpath("om/OpenMind/ds000001/sub-01/anat/sub-01_T1w.nii.gz"));
    assert_string_equal(c->mask, tpath("om/OpenMind/ds000001/sub-01/anat/sub-01_T1w__Data/fb_mask.nii.gz"));
    assert_string_equal(c->deface_mask, tpath("om/OpenMind/ds000001/sub-01/anat/sub-01_T1w__Data/deface_mask.nii.gz"));
    assert_string_equal(c->modality, "T1w");
    assert_true(c->quality == 1.5);
    c = ax_dataset_case_at(ds, 1); /* path relative to OpenMind/, masks by default name */
    assert_string_equal(c->name, "ds000001_sub-01_T2w");
    assert_string_equal(c->subject, "ds000001/sub-01");
    assert_string_equal(c->images[0], tpath("om/OpenMind/ds000001/sub-01/anat/sub-01_T2w.nii.gz"));
    assert_string_equal(c->mask, tpath("om/OpenMind/ds000001/sub-01/anat/sub-01_T2w__Data/fb_mask.nii.gz"));
    c = ax_dataset_case_at(ds, 2);
    assert_string_equal(c->subject, "ds000001/sub-02");
    assert_string_equal(c->name, "ds000001_sub-02_ses-1_T1w");
    c = ax_dataset_case_at(ds, 3);
    assert_string_equal(c->subject, "ds000002/sub-01"); /* not the same subject as ds000001/sub-01 */
    assert_true(isnan(c->quality));
    ax_dataset_free(ds);

    /* quality threshold: keep score <= 2.75; unknown scores are dropped */
    ax_dataset_opts o = ax_dataset_opts_default();
    o.format = "openmind";
    o.root = tpath("om");
    o.max_quality = 2.75;
    assert_ok(ax_dataset_open(&ds, &o));
    assert_int_equal(ax_dataset_size(ds), 3);
    assert_string_equal(ax_dataset_case_at(ds, 2)->modality, "ADC");
    ax_dataset_free(ds);

    const char *incl[] = {"T1w", "FLAIR"}, *excl[] = {"T1w"};
    o.max_quality = NAN;
    o.modalities = incl;
    o.n_modalities = 2;
    assert_ok(ax_dataset_open(&ds, &o));
    assert_int_equal(ax_dataset_size(ds), 3);
    ax_dataset_free(ds);
    o.exclude_modalities = excl;
    o.n_exclude_modalities = 1;
    assert_ok(ax_dataset_open(&ds, &o));
    assert_int_equal(ax_dataset_size(ds), 1);
    assert_string_equal(ax_dataset_case_at(ds, 0)->modality, "FLAIR");
    ax_dataset_free(ds);

    const char *none[] = {"PET"};
    o.modalities = none;
    o.n_modalities = 1;
    o.exclude_modalities = NULL;
    o.n_exclude_modalities = 0;
    assert_int_equal(ax_dataset_open(&ds, &o), AX_ERR_NOT_FOUND);
    assert_msg("no image left (5 rows, 5 filtered out, 0 missing)");
}

static void test_openmind_errors(void **state) {
    (void)state;
    put(tpath("om2/openneuro_metadata.csv"), "image_path,anon_mask_path,modality,image_quality_score\nx.nii.gz,,T1w,1\n");
    assert_int_equal(open_err("openmind", tpath("om2")), AX_ERR_FORMAT);
    assert_msg("om2/openneuro_metadata.csv: missing required column 'anat_mask_path'");

    assert_int_equal(open_err("openmind", tpath("nd")), AX_ERR_NOT_FOUND);
    assert_msg("nd/openneuro_metadata.csv");

    make_openmind(tpath("om3"));
    unlink(tpath("om3/OpenMind/ds000001/sub-02/ses-1/anat/sub-02_ses-1_T1w.nii.gz"));
    assert_int_equal(open_err("openmind", tpath("om3")), AX_ERR_NOT_FOUND);
    assert_msg("openneuro_metadata.csv:4: image_path 'OpenMind/ds000001/sub-02/ses-1/anat/sub-02_ses-1_T1w.nii.gz': no such file");
    ax_dataset_opts o = ax_dataset_opts_default();
    o.format = "openmind";
    o.root = tpath("om3");
    o.skip_missing = true;
    ax_dataset *ds;
    ax_log_level old = ax_log_get_level();
    ax_log_set_level(AX_LOG_LEVEL_OFF);
    assert_ok(ax_dataset_open(&ds, &o));
    ax_log_set_level(old);
    assert_int_equal(ax_dataset_size(ds), 4);
    ax_dataset_free(ds);

    make_openmind(tpath("om4"));
    unlink(tpath("om4/OpenMind/ds000001/sub-01/anat/sub-01_T1w__Data/fb_mask.nii.gz"));
    assert_int_equal(open_err("openmind", tpath("om4")), AX_ERR_NOT_FOUND);
    assert_msg("openneuro_metadata.csv:2: anat_mask_path");

    put(tpath("om5/openneuro_metadata.csv"), "image_path,anon_mask_path,anat_mask_path,modality,image_quality_score\n"
                                             "x.nii.gz,,,T1w,good\n");
    assert_int_equal(open_err("openmind", tpath("om5")), AX_ERR_FORMAT);
    assert_msg("openneuro_metadata.csv:2: image_quality_score 'good' is not a number");

    put(tpath("om6/openneuro_metadata.csv"), "image_path,anon_mask_path,anat_mask_path,modality,image_quality_score\n"
                                             "\"x.nii.gz,,,T1w,1\n");
    assert_int_equal(open_err("openmind", tpath("om6")), AX_ERR_FORMAT);
    assert_msg("unterminated quoted field");
}

/* ---- split ------------------------------------------------------------------------- */

/* nifti-dir tree with `n_subj` subjects of `per` images each. */
static ax_dataset *subjects(const char *dir, int n_subj, int per) {
    char p[1024];
    for (int s = 0; s < n_subj; s++)
        for (int k = 0; k < per; k++) {
            snprintf(p, sizeof p, "%s/%s/sub-%03d/anat/sub-%03d_run-%d_T1w.nii.gz", tmpdir, dir, s, s, k);
            put(p, NULL);
        }
    snprintf(p, sizeof p, "%s/%s", tmpdir, dir);
    return open_ok("nifti-dir", p, NULL);
}

static int count_val_subjects(const ax_dataset *ds, const uint8_t *split, char seen[][16]) {
    int n = 0;
    for (size_t i = 0; i < ax_dataset_size(ds); i++) {
        if (split[i] != AX_SPLIT_VAL) continue;
        const char *s = ax_dataset_case_at(ds, i)->subject;
        int k = 0;
        while (k < n && strcmp(seen[k], s) != 0) k++;
        if (k == n) snprintf(seen[n++], 16, "%s", s);
    }
    return n;
}

static void test_split(void **state) {
    (void)state;
    ax_dataset *one = subjects("sp1", 600, 1), *three = subjects("sp3", 600, 3);
    size_t n1 = ax_dataset_size(one), n3 = ax_dataset_size(three);
    assert_int_equal(n3, 1800);
    uint8_t *a = malloc(n1), *b = malloc(n1), *c = malloc(n3);
    ax_split_opts o = ax_split_opts_default();
    assert_ok(ax_dataset_split(one, &o, a));
    assert_ok(ax_dataset_split(one, &o, b));
    assert_memory_equal(a, b, n1); /* deterministic */
    static char va[1000][16], vc[1000][16];
    assert_int_equal(count_val_subjects(one, a, va), 6); /* 1% of 600 */
    /* an explicit fraction may take more than half; one subject stays */
    o.fraction = 1.0;
    o.max_val = 1000;
    assert_ok(ax_dataset_split(one, &o, b));
    int all = 0;
    for (size_t i = 0; i < n1; i++) all += b[i] == AX_SPLIT_VAL;
    assert_int_equal(all, 599);
    o = ax_split_opts_default();

    /* by subject: every case of a subject on the same side, and the same
     * subjects as with one case each (only names and seed matter) */
    assert_ok(ax_dataset_split(three, &o, c));
    assert_int_equal(count_val_subjects(three, c, vc), 6);
    for (size_t i = 0; i < n3; i += 3) {
        assert_int_equal(c[i], c[i + 1]);
        assert_int_equal(c[i], c[i + 2]);
        assert_int_equal(c[i], a[i / 3]);
        assert_string_equal(ax_dataset_case_at(three, i)->subject, ax_dataset_case_at(one, i / 3)->subject);
    }

    /* another seed, another choice */
    o.seed = 7;
    assert_ok(ax_dataset_split(one, &o, b));
    assert_memory_not_equal(a, b, n1);

    /* min and max clamp; fraction */
    o = ax_split_opts_default();
    o.fraction = 0.5;
    o.max_val = 100;
    assert_ok(ax_dataset_split(one, &o, b));
    int nv = 0;
    for (size_t i = 0; i < n1; i++) nv += b[i] == AX_SPLIT_VAL;
    assert_int_equal(nv, 100);
    o.fraction = 0.1;
    o.max_val = 1000;
    assert_ok(ax_dataset_split(one, &o, b));
    nv = 0;
    for (size_t i = 0; i < n1; i++) nv += b[i] == AX_SPLIT_VAL;
    assert_int_equal(nv, 60);

    o = ax_split_opts_default();
    o.fraction = 1.5;
    assert_int_equal(ax_dataset_split(one, &o, b), AX_ERR_INVALID);
    assert_msg("fraction = 1.5");
    o = ax_split_opts_default();
    o.min_val = 10, o.max_val = 5;
    assert_int_equal(ax_dataset_split(one, &o, b), AX_ERR_INVALID);
    free(a), free(b), free(c);
    ax_dataset_free(one);
    ax_dataset_free(three);

    /* few subjects: min 5, but never more than half of them */
    ax_dataset *few = subjects("sp_few", 20, 1);
    uint8_t s20[20];
    o = ax_split_opts_default();
    assert_ok(ax_dataset_split(few, &o, s20));
    nv = 0;
    for (int i = 0; i < 20; i++) nv += s20[i] == AX_SPLIT_VAL;
    assert_int_equal(nv, 5);
    ax_dataset_free(few);
    few = subjects("sp_3", 3, 2);
    uint8_t s6[6];
    assert_ok(ax_dataset_split(few, &o, s6));
    nv = 0;
    for (int i = 0; i < 6; i++) nv += s6[i] == AX_SPLIT_VAL;
    assert_int_equal(nv, 2); /* the minimum takes at most half: 1 of the 3 subjects, 2 cases */
    ax_dataset_free(few);
    few = subjects("sp_1", 1, 2);
    assert_ok(ax_dataset_split(few, &o, s6));
    assert_int_equal(s6[0], AX_SPLIT_TRAIN);
    assert_int_equal(s6[1], AX_SPLIT_TRAIN);
    ax_dataset_free(few);

    /* nnU-Net test cases stay test */
    make_nnunet(tpath("nnsplit"), nn_json);
    ax_dataset *nn = open_ok("nnunet", tpath("nnsplit"), NULL);
    uint8_t s4[4];
    assert_ok(ax_dataset_split(nn, &o, s4));
    assert_int_equal(s4[3], AX_SPLIT_TEST);
    nv = 0;
    for (int i = 0; i < 3; i++) nv += s4[i] == AX_SPLIT_VAL;
    assert_int_equal(nv, 1);
    ax_dataset_free(nn);
    assert_string_equal(ax_split_name(AX_SPLIT_VAL), "val");
    assert_null(ax_split_name(9));
}

static int setup(void **state) {
    (void)state;
    return ax_test_mkdtemp() ? 0 : -1;
}

static int teardown(void **state) {
    (void)state;
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    return system(cmd) == 0 ? 0 : -1;
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_csv_basic),   cmocka_unit_test(test_csv_quotes),   cmocka_unit_test(test_csv_errors),
        cmocka_unit_test(test_nifti_dir),   cmocka_unit_test(test_nnunet),       cmocka_unit_test(test_nnunet_errors),
        cmocka_unit_test(test_openmind),    cmocka_unit_test(test_openmind_errors), cmocka_unit_test(test_split),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
