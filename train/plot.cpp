// Learning curves and prediction overlays drawn on a small RGB canvas; see plot.h.
//
// Curves are anti-aliased by coverage: each pixel near a polyline gets the fraction of it that a
// disc-swept line of the given thickness covers (from the pixel's distance to the nearest
// segment), taken as the maximum over the segments and blended once, so joints between segments
// are not painted twice and show no dark knots. The work is proportional to the line's length
// times its thickness: drawing a 4-panel, 200-epoch figure takes about 3 ms, while encoding it
// in io::write_png takes far longer.
#include "train/plot.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <optional>
#include <stdexcept>

#include "train/io/image.h"

// stb's code is not ours to fix: quiet the warnings it raises under our flags where the compiler
// does not already treat it as a system header (a copy outside /usr/include).
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wconversion"
#pragma GCC diagnostic ignored "-Wunused-function"
#include <stb/stb_easy_font.h>
#pragma GCC diagnostic pop

namespace unet {
namespace {

uint8_t red(uint32_t rgb) { return uint8_t(rgb >> 16); }
uint8_t green(uint32_t rgb) { return uint8_t(rgb >> 8); }
uint8_t blue(uint32_t rgb) { return uint8_t(rgb); }
uint32_t pack(int r, int g, int b) { return uint32_t(r) << 16 | uint32_t(g) << 8 | uint32_t(b); }

// Distance from p to the segment ab (to the point a when a == b).
double distance_to_segment(Point p, Point a, Point b) {
  double dx = b.x - a.x, dy = b.y - a.y;
  double length2 = dx * dx + dy * dy;
  double t =
      length2 > 0 ? std::clamp(((p.x - a.x) * dx + (p.y - a.y) * dy) / length2, 0.0, 1.0) : 0.0;
  return std::hypot(p.x - (a.x + t * dx), p.y - (a.y + t * dy));
}

// The pixels whose coverage one polyline accumulates: a window of the canvas.
struct Coverage {
  Rect box;
  std::vector<float> value;  // row-major over box

  // Coverage of a segment `thickness` wide with round ends, kept as the maximum per pixel. Only
  // the rows' spans that can lie within reach are visited: a pixel within `reach` of the segment
  // has its nearest segment point within `reach` in both x and y.
  void add_segment(Point a, Point b, double thickness) {
    const double half = thickness / 2, reach = half + 1;
    const double dx = b.x - a.x, dy = b.y - a.y;
    int row_begin = std::max(box.y, int(std::floor(std::min(a.y, b.y) - reach)));
    int row_end = std::min(box.y + box.height - 1, int(std::ceil(std::max(a.y, b.y) + reach)));
    for (int y = row_begin; y <= row_end; ++y) {
      double t0 = 0, t1 = 1;
      if (std::abs(dy) > 1e-12) {
        t0 = std::clamp((y - reach - a.y) / dy, 0.0, 1.0);
        t1 = std::clamp((y + reach - a.y) / dy, 0.0, 1.0);
      }
      double xa = a.x + dx * t0, xb = a.x + dx * t1;
      int col_begin = std::max(box.x, int(std::floor(std::min(xa, xb) - reach)));
      int col_end = std::min(box.x + box.width - 1, int(std::ceil(std::max(xa, xb) + reach)));
      float* row = value.data() + std::size_t(y - box.y) * std::size_t(box.width) - box.x;
      for (int x = col_begin; x <= col_end; ++x) {
        double cover =
            std::clamp(half + 0.5 - distance_to_segment({double(x), double(y)}, a, b), 0.0, 1.0);
        row[x] = std::max(row[x], float(cover));
      }
    }
  }
};

// The font's quads for `s`, unscaled, relative to the text's top-left corner.
std::vector<Rect> glyph_quads(std::string_view s) {
  // stb_easy_font indexes a table by character and takes a mutable string.
  std::string text(s);
  for (char& c : text) {
    if (c < 32 || c > 126) c = '?';
  }
  constexpr int kBytesPerQuad = 64, kMaxQuadsPerChar = 16;
  std::vector<char> vertices(std::size_t(kBytesPerQuad) * kMaxQuadsPerChar * (text.size() + 1));
  int quads =
      stb_easy_font_print(0, 0, text.data(), nullptr, vertices.data(), int(vertices.size()));
  std::vector<Rect> rects;
  rects.reserve(std::size_t(quads));
  for (int q = 0; q < quads; ++q) {
    // A quad's vertices 0 and 2 are its top-left and bottom-right corners (x, y, z floats and a
    // 4-byte colour each, 16 bytes).
    float corner[4];
    const char* quad = vertices.data() + std::size_t(q) * kBytesPerQuad;
    std::memcpy(&corner[0], quad, 2 * sizeof(float));
    std::memcpy(&corner[2], quad + 32, 2 * sizeof(float));
    rects.push_back(
        {int(corner[0]), int(corner[1]), int(corner[2] - corner[0]), int(corner[3] - corner[1])});
  }
  return rects;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Canvas

Canvas::Canvas(int width, int height, uint32_t background) : width_(width), height_(height) {
  if (width <= 0 || height <= 0) {
    throw std::invalid_argument("Canvas: invalid size " + std::to_string(width) + "x" +
                                std::to_string(height));
  }
  rgb_.resize(std::size_t(width) * std::size_t(height) * 3);
  fill_rect({0, 0, width, height}, background);
}

uint32_t Canvas::pixel(int x, int y) const {
  const uint8_t* p = rgb_.data() + (std::size_t(y) * std::size_t(width_) + std::size_t(x)) * 3;
  return pack(p[0], p[1], p[2]);
}

void Canvas::fill_rect(const Rect& r, uint32_t rgb) {
  int x0 = std::max(r.x, 0), x1 = std::min(r.x + r.width, width_);
  int y0 = std::max(r.y, 0), y1 = std::min(r.y + r.height, height_);
  for (int y = y0; y < y1; ++y) {
    uint8_t* p = rgb_.data() + (std::size_t(y) * std::size_t(width_) + std::size_t(x0)) * 3;
    for (int x = x0; x < x1; ++x, p += 3) {
      p[0] = red(rgb);
      p[1] = green(rgb);
      p[2] = blue(rgb);
    }
  }
}

void Canvas::blend(int x, int y, uint32_t rgb, double alpha) {
  if (x < 0 || y < 0 || x >= width_ || y >= height_) return;
  uint8_t* p = rgb_.data() + (std::size_t(y) * std::size_t(width_) + std::size_t(x)) * 3;
  const uint8_t source[3] = {red(rgb), green(rgb), blue(rgb)};
  for (int c = 0; c < 3; ++c) {
    p[c] = uint8_t(std::lround(p[c] + alpha * (source[c] - p[c])));
  }
}

void Canvas::polyline(const std::vector<Point>& points, uint32_t rgb, double thickness,
                      const Rect& clip) {
  if (points.empty()) return;
  const double reach = thickness / 2 + 1;
  double min_x = points[0].x, max_x = min_x, min_y = points[0].y, max_y = min_y;
  for (const Point& p : points) {
    min_x = std::min(min_x, p.x), max_x = std::max(max_x, p.x);
    min_y = std::min(min_y, p.y), max_y = std::max(max_y, p.y);
  }
  int x0 = std::max({clip.x, 0, int(std::floor(min_x - reach))});
  int y0 = std::max({clip.y, 0, int(std::floor(min_y - reach))});
  int x1 = std::min({clip.x + clip.width, width_, int(std::ceil(max_x + reach)) + 1});
  int y1 = std::min({clip.y + clip.height, height_, int(std::ceil(max_y + reach)) + 1});
  if (x0 >= x1 || y0 >= y1) return;

  Coverage coverage{{x0, y0, x1 - x0, y1 - y0},
                    std::vector<float>(std::size_t(x1 - x0) * (y1 - y0))};
  if (points.size() == 1) coverage.add_segment(points[0], points[0], thickness);
  for (std::size_t i = 1; i < points.size(); ++i) {
    coverage.add_segment(points[i - 1], points[i], thickness);
  }
  for (int y = y0; y < y1; ++y) {
    for (int x = x0; x < x1; ++x) {
      float cover =
          coverage.value[std::size_t(y - y0) * std::size_t(x1 - x0) + std::size_t(x - x0)];
      if (cover > 0) blend(x, y, rgb, cover);
    }
  }
}

void Canvas::line(Point a, Point b, uint32_t rgb, double thickness) {
  polyline({a, b}, rgb, thickness, {0, 0, width_, height_});
}

void Canvas::text(int x, int y, std::string_view s, uint32_t rgb, int scale) {
  for (const Rect& q : glyph_quads(s)) {
    fill_rect({x + q.x * scale, y + q.y * scale, q.width * scale, q.height * scale}, rgb);
  }
}

void Canvas::text_up(int x, int y, std::string_view s, uint32_t rgb, int scale) {
  // Turning counter-clockwise sends the text's (right, down) to the canvas's (up, right).
  for (const Rect& q : glyph_quads(s)) {
    fill_rect({x + q.y * scale, y - (q.x + q.width) * scale, q.height * scale, q.width * scale},
              rgb);
  }
}

int Canvas::text_width(std::string_view s, int scale) {
  int width = 0;
  for (const Rect& q : glyph_quads(s)) width = std::max(width, q.x + q.width);
  return width * scale;
}

void Canvas::write_png(const std::string& path) const {
  io::write_png(path, width_, height_, 3, rgb_.data());
}

// ---------------------------------------------------------------------------------------------
// Axes

namespace {

// One axis: the shown interval, where its ticks go and what they say. On a log axis, lo and hi
// are decimal logarithms and ticks are data values.
struct Axis {
  double lo = 0, hi = 1;
  bool log = false;
  std::vector<double> ticks;
  std::vector<std::string> labels;

  // Where v lies along the axis: 0 at lo, 1 at hi.
  double fraction(double v) const { return ((log ? std::log10(v) : v) - lo) / (hi - lo); }
};

// "%g" with the exponent shortened: 1e-05 becomes 1e-5, 1e+06 becomes 1e6.
std::string format_number(double v, int significant) {
  char buffer[32];
  std::snprintf(buffer, sizeof buffer, "%.*g", significant, v);
  std::string s = buffer;
  std::size_t e = s.find('e');
  if (e == std::string::npos) return s;
  std::string mantissa = s.substr(0, e), exponent = s.substr(e + 1);
  bool negative = exponent[0] == '-';
  exponent.erase(0, exponent.find_first_not_of("+-0"));
  return mantissa + "e" + (negative ? "-" : "") + exponent;
}

// Tick labels of a linear axis with step `step`: as many decimals as the step needs, so that
// all labels of an axis look alike (0.0, 0.2, ..., 1.0 rather than 0, 0.2, ..., 1).
std::string linear_label(double v, double step) {
  if (std::abs(v) < step * 1e-6) v = 0;  // no "-0.0" from rounding
  if (step < 1e-4 || std::max(std::abs(v), step) >= 1e6) return format_number(v, 3);
  int decimals = std::max(0, -int(std::floor(std::log10(step) + 1e-9)));
  char buffer[32];
  std::snprintf(buffer, sizeof buffer, "%.*f", decimals, v);
  return buffer;
}

// The smallest of 1, 2, 5 times a power of ten that is at least `raw`.
double nice_step(double raw) {
  double magnitude = std::pow(10.0, std::floor(std::log10(raw)));
  double f = raw / magnitude;
  return (f <= 1 ? 1 : f <= 2 ? 2 : f <= 5 ? 5 : 10) * magnitude;
}

// A linear axis over [lo, hi] widened to whole steps, with about `target` ticks and steps no
// smaller than `min_step` (1 for epochs).
Axis linear_axis(double lo, double hi, int target, double min_step) {
  if (!(hi - lo > 1e-9 * std::max(std::abs(lo), std::abs(hi)))) {
    // A single value: centre it in an interval of its own scale, without making up negative
    // values for data that has none (a Dice of 0 gets [0, 1], not [-1, 1]).
    double pad = std::max(lo != 0 ? std::abs(lo) * 0.1 : 1.0, min_step);
    bool non_negative = lo >= 0;
    lo -= pad, hi += pad;
    if (non_negative) lo = std::max(lo, 0.0);
  }
  double step = std::max(nice_step((hi - lo) / target), min_step);
  Axis axis;
  long first = std::lround(std::floor(lo / step + 1e-9));
  long last = std::lround(std::ceil(hi / step - 1e-9));
  axis.lo = double(first) * step;
  axis.hi = double(last) * step;
  for (long i = first; i <= last; ++i) {
    axis.ticks.push_back(double(i) * step);
    axis.labels.push_back(linear_label(double(i) * step, step));
  }
  return axis;
}

// A log axis over whole decades around [lo, hi] (both > 0): ticks at powers of ten, thinned to
// at most about six, plus 2 and 5 times them when the axis spans a single decade.
Axis log_axis(double lo, double hi) {
  int first = int(std::floor(std::log10(lo) + 1e-9));
  int last = int(std::ceil(std::log10(hi) - 1e-9));
  if (first == last) --first, ++last;
  int stride = (last - first + 5) / 6;
  Axis axis;
  axis.log = true;
  axis.lo = first;
  axis.hi = last;
  for (int e = first; e <= last; ++e) {
    if ((e - first) % stride != 0) continue;
    for (double mantissa : {1.0, 2.0, 5.0}) {
      if (mantissa > 1 && (last - first > 1 || e == last)) break;
      double v = mantissa * std::pow(10.0, e);
      axis.ticks.push_back(v);
      axis.labels.push_back(format_number(v, 6));
    }
  }
  return axis;
}

// ---------------------------------------------------------------------------------------------
// Learning curves

constexpr uint32_t kInk = 0x202020;
constexpr uint32_t kFrame = 0x404040;
constexpr uint32_t kGrid = 0xe6e6e6;
constexpr int kTextScale = 2;
constexpr int kTickLength = 5;
constexpr int kGap = 8;
constexpr int kSwatch = 14;
constexpr int kLegendRow = 24;
constexpr double kLineWidth = 2.5;
constexpr double kDotDiameter = 6;  // a value between gaps: visibly more than a line's end
constexpr int kInset = 6;           // more than a dot's radius

bool plottable(double y, bool log_y) { return std::isfinite(y) && (!log_y || y > 0); }

void check_series(const Series& s) {
  if (s.x.size() != s.y.size()) {
    throw std::invalid_argument("plot_curves: series \"" + s.name + "\" has " +
                                std::to_string(s.x.size()) + " x values but " +
                                std::to_string(s.y.size()) + " y values");
  }
}

// The [min, max] of the plottable values of `panels` (all x values when `want_x`, else the y
// values), or nothing when there are none.
std::optional<std::pair<double, double>> data_range(const std::vector<CurvePanel>& panels,
                                                    bool want_x) {
  double lo = INFINITY, hi = -INFINITY;
  for (const CurvePanel& panel : panels) {
    for (const Series& s : panel.series) {
      for (std::size_t i = 0; i < s.y.size(); ++i) {
        if (!plottable(s.y[i], panel.log_y) || !std::isfinite(s.x[i])) continue;
        double v = want_x ? s.x[i] : s.y[i];
        lo = std::min(lo, v), hi = std::max(hi, v);
      }
    }
  }
  if (lo > hi) return std::nullopt;
  return std::pair{lo, hi};
}

Axis x_axis_of(const std::vector<CurvePanel>& panels) {
  auto range = data_range(panels, true);
  return range ? linear_axis(range->first, range->second, 10, 1) : linear_axis(0, 10, 10, 1);
}

Axis y_axis_of(const CurvePanel& panel) {
  auto range = data_range({panel}, false);
  if (panel.log_y) return range ? log_axis(range->first, range->second) : log_axis(0.1, 1);
  return range ? linear_axis(range->first, range->second, 5, 0) : linear_axis(0, 1, 5, 0);
}

// The columns shared by all panels, so that their x-axes line up: the plot area spans
// [plot_left, plot_right), the legend starts at legend_left.
struct Columns {
  int plot_left, plot_right, legend_left;
};

Columns columns_of(const std::vector<CurvePanel>& panels, const std::vector<Axis>& y_axes) {
  int label_width = 0, name_width = 0;
  for (const Axis& axis : y_axes) {
    for (const std::string& label : axis.labels) {
      label_width = std::max(label_width, Canvas::text_width(label, kTextScale));
    }
  }
  for (const CurvePanel& panel : panels) {
    for (const Series& s : panel.series) {
      name_width = std::max(name_width, Canvas::text_width(s.name, kTextScale));
    }
  }
  int plot_left = kGap + Canvas::text_height(kTextScale) + kGap + label_width + kGap + kTickLength;
  // The legend, when there is one, sits 2 gaps right of the plot and 2 gaps from the edge.
  int legend_width = name_width > 0 ? 2 * kGap + kSwatch + kGap + name_width : 0;
  int plot_right = std::max(plot_left + 100, kCurvesWidth - 2 * kGap - legend_width);
  return {plot_left, plot_right, plot_right + 2 * kGap};
}

// Maps data to canvas coordinates inside one panel's plot area. The axis limits lie kInset
// pixels inside the frame, so that values on them (the first epoch, a Dice of 0) are drawn whole
// instead of half hidden under the frame.
struct Frame {
  Rect area;
  const Axis& x;
  const Axis& y;

  double to_x(double v) const {
    return area.x + kInset + x.fraction(v) * (area.width - 1 - 2 * kInset);
  }
  double to_y(double v) const {
    return area.y + kInset + (1 - y.fraction(v)) * (area.height - 1 - 2 * kInset);
  }
};

void draw_axes(Canvas& canvas, const Frame& f) {
  const Rect& a = f.area;
  const int text_h = Canvas::cap_height(kTextScale);
  for (std::size_t i = 0; i < f.y.ticks.size(); ++i) {
    int y = int(std::lround(f.to_y(f.y.ticks[i])));
    canvas.fill_rect({a.x, y, a.width, 1}, kGrid);
    canvas.fill_rect({a.x - kTickLength, y, kTickLength, 1}, kFrame);
    int w = Canvas::text_width(f.y.labels[i], kTextScale);
    canvas.text(a.x - kTickLength - kGap / 2 - w, y - text_h / 2, f.y.labels[i], kInk, kTextScale);
  }
  for (std::size_t i = 0; i < f.x.ticks.size(); ++i) {
    int x = int(std::lround(f.to_x(f.x.ticks[i])));
    canvas.fill_rect({x, a.y, 1, a.height}, kGrid);
    canvas.fill_rect({x, a.y + a.height, 1, kTickLength}, kFrame);
    int w = Canvas::text_width(f.x.labels[i], kTextScale);
    canvas.text(x - w / 2, a.y + a.height + kTickLength + kGap / 2, f.x.labels[i], kInk,
                kTextScale);
  }
  canvas.fill_rect({a.x, a.y, a.width, 1}, kFrame);
  canvas.fill_rect({a.x, a.y + a.height - 1, a.width, 1}, kFrame);
  canvas.fill_rect({a.x, a.y, 1, a.height}, kFrame);
  canvas.fill_rect({a.x + a.width - 1, a.y, 1, a.height}, kFrame);
}

// Each run of plottable points as one polyline; a run of one point is a dot.
void draw_series(Canvas& canvas, const Frame& f, const Series& s, bool log_y) {
  std::vector<Point> run;
  for (std::size_t i = 0; i <= s.y.size(); ++i) {
    if (i < s.y.size() && plottable(s.y[i], log_y) && std::isfinite(s.x[i])) {
      run.push_back({f.to_x(s.x[i]), f.to_y(s.y[i])});
    } else if (!run.empty()) {
      canvas.polyline(run, s.rgb, run.size() == 1 ? kDotDiameter : kLineWidth, f.area);
      run.clear();
    }
  }
}

void draw_legend(Canvas& canvas, int left, int top, const std::vector<Series>& series) {
  int y = top;
  for (const Series& s : series) {
    if (s.name.empty()) continue;
    canvas.fill_rect({left, y, kSwatch, kSwatch}, s.rgb);
    canvas.text(left + kSwatch + kGap, y, s.name, kInk, kTextScale);
    y += kLegendRow;
  }
}

void draw_panel(Canvas& canvas, int top, const Columns& columns, const CurvePanel& panel,
                const Axis& x_axis, const Axis& y_axis) {
  // Room above for the top tick label, below for the tick marks and their labels.
  const int above = kGap + Canvas::cap_height(kTextScale) / 2;
  const int below = kTickLength + kGap + Canvas::text_height(kTextScale) + kGap;
  const Rect area{columns.plot_left, top + above, columns.plot_right - columns.plot_left,
                  kCurvesPanelHeight - above - below};
  const Frame frame{area, x_axis, y_axis};
  draw_axes(canvas, frame);
  for (const Series& s : panel.series) draw_series(canvas, frame, s, panel.log_y);
  draw_legend(canvas, columns.legend_left, area.y, panel.series);
  int label_width = Canvas::text_width(panel.y_label, kTextScale);
  canvas.text_up(kGap, area.y + (area.height + label_width) / 2, panel.y_label, kInk, kTextScale);
}

}  // namespace

void plot_curves(const std::string& path, const std::vector<CurvePanel>& panels,
                 const std::string& title, const std::string& x_label) {
  if (panels.empty()) throw std::invalid_argument("plot_curves: no panels for " + path);
  for (const CurvePanel& panel : panels) {
    for (const Series& s : panel.series) check_series(s);
  }
  const Axis x_axis = x_axis_of(panels);
  std::vector<Axis> y_axes;
  for (const CurvePanel& panel : panels) y_axes.push_back(y_axis_of(panel));
  const Columns columns = columns_of(panels, y_axes);

  const int height =
      kCurvesTitleHeight + int(panels.size()) * kCurvesPanelHeight + kCurvesFooterHeight;
  Canvas canvas(kCurvesWidth, height, kPlotBackground);
  constexpr int kTitleScale = 3;
  canvas.text((kCurvesWidth - Canvas::text_width(title, kTitleScale)) / 2,
              (kCurvesTitleHeight - Canvas::cap_height(kTitleScale)) / 2, title, kInk, kTitleScale);
  for (std::size_t i = 0; i < panels.size(); ++i) {
    draw_panel(canvas, kCurvesTitleHeight + int(i) * kCurvesPanelHeight, columns, panels[i], x_axis,
               y_axes[i]);
  }
  canvas.text(
      (columns.plot_left + columns.plot_right - Canvas::text_width(x_label, kTextScale)) / 2,
      height - kCurvesFooterHeight, x_label, kInk, kTextScale);
  canvas.write_png(path);
}

// ---------------------------------------------------------------------------------------------
// Prediction overlays

namespace {

constexpr int kMargin = 12;
constexpr int kCaptionGap = 6;

void check_overlay(const OverlayInput& in) {
  auto fail = [](const std::string& why) { throw std::invalid_argument("plot_overlay: " + why); };
  if (in.channels < 1 || in.height < 1 || in.width < 1) {
    fail("invalid image size " + std::to_string(in.channels) + "x" + std::to_string(in.height) +
         "x" + std::to_string(in.width));
  }
  if (in.image == nullptr || in.prediction == nullptr) fail("no image or no prediction");
  if (in.scale < 1 || in.scale > 8) fail("scale " + std::to_string(in.scale) + " not in 1..8");
  if (in.display_channels.size() != 1 && in.display_channels.size() != 3) {
    fail("display_channels needs 1 (grey) or 3 (RGB) channel indices");
  }
  for (int c : in.display_channels) {
    if (c < 0 || c >= in.channels) fail("display channel " + std::to_string(c) + " out of range");
  }
}

std::vector<std::string> captions_of(const OverlayInput& in) {
  if (in.truth == nullptr) return {"image", "prediction", "overlay"};
  return {"image", "truth", "prediction", "overlay"};
}

// One channel mapped to 0..255 linearly from its 1st to its 99th percentile (of the finite
// values; others show black), so that a few hot pixels do not darken the whole image.
std::vector<uint8_t> stretch(const float* channel, std::size_t count) {
  std::vector<float> finite;
  finite.reserve(count);
  for (std::size_t i = 0; i < count; ++i) {
    if (std::isfinite(channel[i])) finite.push_back(channel[i]);
  }
  double lo = 0, hi = 1;
  if (!finite.empty()) {
    auto percentile = [&](double p) {
      auto nth = finite.begin() + std::ptrdiff_t(std::lround(p * double(finite.size() - 1)));
      std::nth_element(finite.begin(), nth, finite.end());
      return double(*nth);
    };
    lo = percentile(0.01);
    hi = percentile(0.99);
    if (hi <= lo) hi = lo + 1;  // a constant image: its value shows black
  }
  std::vector<uint8_t> out(count, 0);
  for (std::size_t i = 0; i < count; ++i) {
    if (std::isfinite(channel[i])) {
      out[i] = uint8_t(std::lround(std::clamp((channel[i] - lo) / (hi - lo), 0.0, 1.0) * 255));
    }
  }
  return out;
}

// The displayed image, one 0xRRGGBB per pixel.
std::vector<uint32_t> display_image(const OverlayInput& in) {
  const std::size_t plane = std::size_t(in.height) * std::size_t(in.width);
  std::vector<std::vector<uint8_t>> stretched;
  for (int c : in.display_channels) stretched.push_back(stretch(in.image + plane * c, plane));
  const std::vector<uint8_t>& r = stretched[0];
  const std::vector<uint8_t>& g = stretched.size() == 3 ? stretched[1] : r;
  const std::vector<uint8_t>& b = stretched.size() == 3 ? stretched[2] : r;
  std::vector<uint32_t> out(plane);
  for (std::size_t i = 0; i < plane; ++i) out[i] = pack(r[i], g[i], b[i]);
  return out;
}

std::vector<bool> mask_of(const float* values, std::size_t count, float threshold) {
  std::vector<bool> mask(count);
  for (std::size_t i = 0; i < count; ++i) mask[i] = values[i] > threshold;
  return mask;
}

// Inside the mask with a 4-neighbour outside it or outside the image.
bool on_boundary(const std::vector<bool>& mask, int width, int height, int x, int y) {
  auto inside = [&](int i, int j) {
    return i >= 0 && j >= 0 && i < width && j < height && mask[std::size_t(j) * width + i];
  };
  return inside(x, y) &&
         !(inside(x - 1, y) && inside(x + 1, y) && inside(x, y - 1) && inside(x, y + 1));
}

std::vector<uint32_t> with_contours(std::vector<uint32_t> pixels, const OverlayInput& in) {
  const std::size_t plane = std::size_t(in.height) * std::size_t(in.width);
  const std::vector<bool> predicted = mask_of(in.prediction, plane, in.threshold);
  const std::vector<bool> truth =
      in.truth != nullptr ? mask_of(in.truth, plane, 0.5f) : std::vector<bool>(plane, false);
  for (int y = 0; y < in.height; ++y) {
    for (int x = 0; x < in.width; ++x) {
      bool t = on_boundary(truth, in.width, in.height, x, y);
      bool p = on_boundary(predicted, in.width, in.height, x, y);
      if (t || p) {
        pixels[std::size_t(y) * in.width + x] = t && p ? kBothContours
                                                : t    ? kTruthContour
                                                       : kPredictionContour;
      }
    }
  }
  return pixels;
}

// A mask (values > threshold white) or, with threshold NaN, values in [0, 1] as grey levels.
std::vector<uint32_t> grey_panel(const float* values, std::size_t count, float threshold) {
  std::vector<uint32_t> out(count);
  for (std::size_t i = 0; i < count; ++i) {
    int level = std::isnan(threshold)
                    ? int(std::lround(std::clamp(double(values[i]), 0.0, 1.0) * 255))
                    : (values[i] > threshold ? 255 : 0);
    out[i] = pack(level, level, level);
  }
  return out;
}

void blit(Canvas& canvas, int left, int top, const OverlayInput& in,
          const std::vector<uint32_t>& pixels) {
  for (int y = 0; y < in.height; ++y) {
    for (int x = 0; x < in.width; ++x) {
      canvas.fill_rect({left + x * in.scale, top + y * in.scale, in.scale, in.scale},
                       pixels[std::size_t(y) * in.width + x]);
    }
  }
}

}  // namespace

OverlayLayout overlay_layout(const OverlayInput& in) {
  check_overlay(in);
  const std::vector<std::string> captions = captions_of(in);
  const int panel_width = in.width * in.scale, panel_height = in.height * in.scale;
  // A panel narrower than its caption gets a slot as wide as the caption, centred in it.
  int slot = panel_width;
  for (const std::string& c : captions) slot = std::max(slot, Canvas::text_width(c, kTextScale));
  const int n = int(captions.size());

  OverlayLayout layout;
  int header_band = in.header.empty() ? 0 : Canvas::text_height(kTextScale) + 2 * kMargin;
  layout.top = kMargin + header_band + Canvas::text_height(kTextScale) + kCaptionGap;
  for (int i = 0; i < n; ++i) {
    layout.left.push_back(kMargin + i * (slot + kMargin) + (slot - panel_width) / 2);
  }
  layout.width = std::max(2 * kMargin + n * slot + (n - 1) * kMargin,
                          2 * kMargin + Canvas::text_width(in.header, kTextScale));
  layout.height = layout.top + panel_height + kMargin;
  return layout;
}

void plot_overlay(const std::string& path, const OverlayInput& in) {
  const OverlayLayout layout = overlay_layout(in);
  const std::vector<std::string> captions = captions_of(in);
  const std::size_t plane = std::size_t(in.height) * std::size_t(in.width);
  const std::vector<uint32_t> image = display_image(in);

  std::vector<std::vector<uint32_t>> panels = {image};
  if (in.truth != nullptr) panels.push_back(grey_panel(in.truth, plane, 0.5f));
  panels.push_back(grey_panel(in.prediction, plane, in.show_probabilities ? NAN : in.threshold));
  panels.push_back(with_contours(image, in));

  Canvas canvas(layout.width, layout.height, kPlotBackground);
  if (!in.header.empty()) canvas.text(kMargin, kMargin, in.header, kInk, kTextScale);
  const int caption_top = layout.top - kCaptionGap - Canvas::text_height(kTextScale);
  const int panel_width = in.width * in.scale;
  for (std::size_t i = 0; i < panels.size(); ++i) {
    int caption_width = Canvas::text_width(captions[i], kTextScale);
    canvas.text(layout.left[i] + (panel_width - caption_width) / 2, caption_top, captions[i], kInk,
                kTextScale);
    blit(canvas, layout.left[i], layout.top, in, panels[i]);
  }
  canvas.write_png(path);
}

}  // namespace unet
