/* The benchmark as an SVG line plot, written by hand: GB/s against the
 * number of classes on a log axis, one line per op, and the copy
 * bandwidth measured in the same run as a dashed horizontal roofline. */
#include "bench.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#define W 860.0
#define H 500.0
#define LEFT 70.0
#define RIGHT 190.0 /* room for the legend */
#define TOP 50.0
#define BOTTOM 60.0

static const char *colors[OPS_BENCH_COUNT] = {"#1f77b4", "#ff7f0e", "#2ca02c",
                                       "#d62728", "#9467bd", "#8c564b",
                                       "#e377c2"};

static void xml_text(FILE *f, const char *s) {
    for (; *s; s++) {
        switch (*s) {
        case '&': fputs("&amp;", f); break;
        case '<': fputs("&lt;", f); break;
        case '>': fputs("&gt;", f); break;
        case '"': fputs("&quot;", f); break;
        default: fputc(*s, f);
        }
    }
}

/* 1, 2 or 5 times a power of ten, at least x. */
static double nice_step(double x) {
    double p = pow(10, floor(log10(x))), m = x / p;
    return (m <= 1 ? 1 : m <= 2 ? 2 : m <= 5 ? 5 : 10) * p;
}

static void class_label(char *buf, size_t size, int exponent) {
    static const char *names[] = {"1", "10", "100", "1k", "10k", "100k",
                                  "1M", "10M", "100M"};
    if (exponent >= 0 && exponent <= 8) snprintf(buf, size, "%s", names[exponent]);
    else snprintf(buf, size, "1e%d", exponent);
}

int bench_svg(const char *path, const char *title, const bench_result *r,
              size_t n, double copy_gbps, char *error, size_t es) {
    double cmin = INFINITY, cmax = 0, ymax = copy_gbps;
    for (size_t i = 0; i < n; i++) {
        cmin = fmin(cmin, (double)r[i].cols);
        cmax = fmax(cmax, (double)r[i].cols);
        if (isfinite(r[i].gbps)) ymax = fmax(ymax, r[i].gbps);
    }
    if (!n) cmin = cmax = 10;
    int x0 = (int)floor(log10(cmin)), x1 = (int)ceil(log10(cmax));
    if (x1 <= x0) x1 = x0 + 1;
    if (!(ymax > 0)) ymax = 1;
    double ystep = nice_step(ymax * 1.1 / 5);
    double ytop = ystep * ceil(ymax * 1.1 / ystep);
    double pw = W - LEFT - RIGHT, ph = H - TOP - BOTTOM;
#define PX(c) (LEFT + (log10(c) - x0) / (x1 - x0) * pw)
#define PY(g) (TOP + ph - (g) / ytop * ph)

    FILE *f = fopen(path, "w");
    if (!f) {
        snprintf(error, es, "%s: %s", path, strerror(errno));
        return -1;
    }
    fprintf(f, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" "
            "height=\"%.0f\" viewBox=\"0 0 %.0f %.0f\" font-family=\"sans-serif\" "
            "font-size=\"12\">\n<rect width=\"100%%\" height=\"100%%\" "
            "fill=\"white\"/>\n<text x=\"%.0f\" y=\"28\" font-size=\"15\" "
            "text-anchor=\"middle\">", W, H, W, H, LEFT + pw / 2);
    xml_text(f, title);
    fprintf(f, "</text>\n");
    /* Grid, ticks and axis labels. */
    for (int e = x0; e <= x1; e++) {
        char label[16];
        class_label(label, sizeof label, e);
        double x = PX(pow(10, e));
        fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" "
                "stroke=\"#ddd\"/>\n<text x=\"%.1f\" y=\"%.1f\" "
                "text-anchor=\"middle\">%s</text>\n",
                x, TOP, x, TOP + ph, x, TOP + ph + 18, label);
    }
    for (double g = 0; g <= ytop + ystep / 2; g += ystep)
        fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" "
                "stroke=\"#ddd\"/>\n<text x=\"%.1f\" y=\"%.1f\" "
                "text-anchor=\"end\">%g</text>\n",
                LEFT, PY(g), LEFT + pw, PY(g), LEFT - 6, PY(g) + 4, g);
    fprintf(f, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" "
            "fill=\"none\" stroke=\"black\"/>\n", LEFT, TOP, pw, ph);
    fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">number of "
            "classes C (log scale)</text>\n", LEFT + pw / 2, H - 18);
    fprintf(f, "<text transform=\"translate(18 %.1f) rotate(-90)\" "
            "text-anchor=\"middle\">effective GB/s (minimum bytes)</text>\n",
            TOP + ph / 2);
    /* The roofline. */
    fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" "
            "stroke=\"black\" stroke-width=\"1.5\" stroke-dasharray=\"6 4\"/>\n",
            LEFT, PY(copy_gbps), LEFT + pw, PY(copy_gbps));
    /* One line per op, points in order of C, and its legend entry. */
    double ly = TOP + 12;
    for (int rank = 0; rank < OPS_BENCH_COUNT; rank++) {
        const ops_desc *op = ops_bench(rank);
        double last = 0;
        int points = 0;
        for (;;) { /* the next larger C of this op (results are few) */
            const bench_result *next = NULL;
            for (size_t i = 0; i < n; i++)
                if (r[i].op == op && r[i].cols > last &&
                    isfinite(r[i].gbps) && (!next || r[i].cols < next->cols))
                    next = &r[i];
            if (!next) break;
            if (!points++)
                fprintf(f, "<polyline fill=\"none\" stroke-width=\"2\" "
                        "stroke=\"%s\" points=\"", colors[rank]);
            fprintf(f, "%.1f,%.1f ", PX((double)next->cols), PY(next->gbps));
            last = (double)next->cols;
        }
        if (!points) continue;
        fprintf(f, "\"/>\n");
        last = 0;
        for (size_t i = 0; i < n; i++)
            if (r[i].op == op && isfinite(r[i].gbps))
                fprintf(f, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3\" "
                        "fill=\"%s\"/>\n", PX((double)r[i].cols),
                        PY(r[i].gbps), colors[rank]);
        fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" "
                "stroke=\"%s\" stroke-width=\"2\"/>\n<text x=\"%.1f\" "
                "y=\"%.1f\">%s</text>\n", LEFT + pw + 15, ly, LEFT + pw + 40,
                ly, colors[rank], LEFT + pw + 46, ly + 4, op->bench_name);
        ly += 20;
    }
    fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" "
            "stroke=\"black\" stroke-width=\"1.5\" stroke-dasharray=\"6 4\"/>\n"
            "<text x=\"%.1f\" y=\"%.1f\">copy %.3g GB/s</text>\n",
            LEFT + pw + 15, ly, LEFT + pw + 40, ly, LEFT + pw + 46, ly + 4,
            copy_gbps);
    fprintf(f, "</svg>\n");
    if (fclose(f) != 0) {
        snprintf(error, es, "%s: write failed", path);
        return -1;
    }
    return 0;
}
