/*
 * svgplot.h - the few SVG drawings the examples make (decision regions with
 * the data points over them, a curve), written atomically: everything goes
 * to "<path>.tmp", which is renamed over path only once it is complete, so a
 * reader never sees half a picture and an old picture survives a failure.
 *
 * Header-only (static inline, so a program that uses some of it gets no
 * unused-function warning); plain ISO C, no dependency but <stdio.h>.
 *
 * Coordinates: a frame maps a data rectangle [xmin, xmax] x [ymin, ymax]
 * onto a pixel rectangle at (px, py) of size pw x ph; y grows upwards in the
 * data and downwards in SVG, so the mapping flips it.
 */
#ifndef SLOPE_EXAMPLES_SVGPLOT_H
#define SLOPE_EXAMPLES_SVGPLOT_H

#include <errno.h>
#include <stdio.h>
#include <string.h>

typedef struct svg {
    FILE *f;
    const char *prog; /* for messages: "planar: cannot write ..." */
    char path[1024], tmp[1040];
} svg;

typedef struct svg_frame {
    double px, py, pw, ph;         /* pixels: top-left corner and size */
    double xmin, xmax, ymin, ymax; /* data */
} svg_frame;

static inline double svg_x(const svg_frame *fr, double x) {
    return fr->px + (x - fr->xmin) / (fr->xmax - fr->xmin) * fr->pw;
}
static inline double svg_y(const svg_frame *fr, double y) {
    return fr->py + fr->ph - (y - fr->ymin) / (fr->ymax - fr->ymin) * fr->ph;
}

/* Start a picture of width x height pixels on "<path>.tmp". 0, or -1 after
 * printing why. */
static inline int svg_open(svg *s, const char *prog, const char *path, int width, int height) {
    s->prog = prog;
    s->f = NULL;
    if (strlen(path) >= sizeof s->path) {
        fprintf(stderr, "%s: output path too long: %s\n", prog, path);
        return -1;
    }
    strcpy(s->path, path);
    snprintf(s->tmp, sizeof s->tmp, "%s.tmp", path);
    s->f = fopen(s->tmp, "w");
    if (!s->f) {
        fprintf(stderr, "%s: cannot write %s: %s\n", prog, s->tmp, strerror(errno));
        return -1;
    }
    fprintf(s->f,
            "<svg xmlns='http://www.w3.org/2000/svg' width='%d' height='%d' "
            "viewBox='0 0 %d %d' font-family='sans-serif'>\n"
            "<rect width='100%%' height='100%%' fill='white'/>\n",
            width, height, width, height);
    return 0;
}

/* Finish: close the tag, flush, close, rename over path. 0, or -1 after
 * printing why (the temporary file is removed; path is untouched). Without
 * fsync (not ISO C) the rename is atomic for readers, not against a power
 * cut; sl_params_save, in the library, does fsync. */
static inline int svg_close(svg *s) {
    if (!s->f) return -1;
    fprintf(s->f, "</svg>\n");
    int bad = fflush(s->f) != 0 || ferror(s->f);
    int err = errno;
    if (fclose(s->f) != 0 && !bad) bad = 1, err = errno;
    s->f = NULL;
    if (!bad && rename(s->tmp, s->path) != 0) bad = 1, err = errno;
    if (bad) {
        fprintf(stderr, "%s: cannot write %s: %s\n", s->prog, s->path, strerror(err));
        remove(s->tmp);
        return -1;
    }
    return 0;
}

/* Abandon a picture (after an error elsewhere): close and remove the temporary file. */
static inline void svg_abort(svg *s) {
    if (s->f) fclose(s->f);
    s->f = NULL;
    remove(s->tmp);
}

/* A text label at pixel (x, y); anchor "start", "middle" or "end". The text
 * must not contain '<' or '&'. */
static inline void svg_text(svg *s, double x, double y, int size, const char *anchor,
                            const char *text) {
    fprintf(s->f, "<text x='%.1f' y='%.1f' font-size='%d' text-anchor='%s'>%s</text>\n", x, y, size,
            anchor, text);
}

/* Decision regions: cls[r*nx + c] is the class predicted for the cell in
 * column c (left to right) and row r (bottom to top) of an nx x ny grid over
 * the frame's data rectangle; the cell is filled with fill[class]. Runs of
 * equal cells in a row become one rectangle, which keeps the file small. */
static inline void svg_regions(svg *s, const svg_frame *fr, int nx, int ny, const int *cls,
                               const char *const *fill) {
    const double cw = fr->pw / nx, ch = fr->ph / ny;
    fprintf(s->f, "<g shape-rendering='crispEdges'>\n");
    for (int r = 0; r < ny; r++)
        for (int c = 0; c < nx;) {
            int k = cls[r * nx + c], end = c + 1;
            while (end < nx && cls[r * nx + end] == k) end++;
            /* +0.5 px of overlap hides the hairlines between cells */
            fprintf(s->f, "<rect x='%.2f' y='%.2f' width='%.2f' height='%.2f' fill='%s'/>\n",
                    fr->px + c * cw, fr->py + fr->ph - (r + 1) * ch, (end - c) * cw + 0.5, ch + 0.5,
                    fill[k]);
            c = end;
        }
    fprintf(s->f, "</g>\n");
}

/* n points (x[i*stride], y[i*stride]) as dots coloured by class. */
static inline void svg_points(svg *s, const svg_frame *fr, int n, const double *x, const double *y,
                              int stride, const int *label, const char *const *color) {
    fprintf(s->f, "<g stroke='black' stroke-width='0.4'>\n");
    for (int i = 0; i < n; i++)
        fprintf(s->f, "<circle cx='%.2f' cy='%.2f' r='3' fill='%s'/>\n",
                svg_x(fr, x[(size_t)i * stride]), svg_y(fr, y[(size_t)i * stride]),
                color[label[i]]);
    fprintf(s->f, "</g>\n");
}

/* A curve through (x[i], y[i]), i < n, clipped to the frame's y range. */
static inline void svg_curve(svg *s, const svg_frame *fr, int n, const double *x, const double *y,
                             const char *color) {
    fprintf(s->f, "<polyline fill='none' stroke='%s' stroke-width='1.5' points='", color);
    for (int i = 0; i < n; i++) {
        double v = y[i] < fr->ymin ? fr->ymin : y[i] > fr->ymax ? fr->ymax : y[i];
        fprintf(s->f, "%.1f,%.1f ", svg_x(fr, x[i]), svg_y(fr, v));
    }
    fprintf(s->f, "'/>\n");
}

/* The frame's border with its data range written at the corners. */
static inline void svg_box(svg *s, const svg_frame *fr) {
    fprintf(s->f,
            "<rect x='%.1f' y='%.1f' width='%.1f' height='%.1f' fill='none' stroke='#444'/>\n",
            fr->px, fr->py, fr->pw, fr->ph);
    fprintf(s->f,
            "<g font-size='11' fill='#444'>"
            "<text x='%.1f' y='%.1f' text-anchor='start'>%.3g</text>"
            "<text x='%.1f' y='%.1f' text-anchor='end'>%.3g</text>"
            "<text x='%.1f' y='%.1f' text-anchor='end'>%.3g</text>"
            "<text x='%.1f' y='%.1f' text-anchor='end'>%.3g</text></g>\n",
            fr->px, fr->py + fr->ph + 14, fr->xmin, fr->px + fr->pw, fr->py + fr->ph + 14, fr->xmax,
            fr->px - 4, fr->py + fr->ph, fr->ymin, fr->px - 4, fr->py + 10, fr->ymax);
}

#endif /* SLOPE_EXAMPLES_SVGPLOT_H */
