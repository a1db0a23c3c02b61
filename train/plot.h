// Figures for watching a training run: learning curves (progress.png, redrawn every epoch, in the
// manner of nnU-Net's) and prediction overlays (image, truth, prediction, contours side by side).
//
// Everything is drawn here on a small RGB canvas and written with io::write_png (atomic, so a
// viewer that reloads the file while training redraws it never sees half a figure). Text is
// stb_easy_font's quad font scaled by an integer factor: no font files, no plotting library, and
// no dependency on the tensor engine, so the figures can be drawn from any tool.
//
// Colours are 0xRRGGBB.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace unet {

inline constexpr uint32_t kPlotBackground = 0xffffff;  // of both kinds of figure

// ---------------------------------------------------------------------------------------------
// Canvas

struct Rect {
  int x = 0, y = 0, width = 0, height = 0;
};

// A point in pixel coordinates: pixel (i, j) covers the unit square centred on (i, j).
struct Point {
  double x = 0, y = 0;
};

class Canvas {
 public:
  Canvas(int width, int height, uint32_t background);

  int width() const { return width_; }
  int height() const { return height_; }
  uint32_t pixel(int x, int y) const;
  // Interleaved RGB rows, top to bottom: what write_png takes.
  const std::vector<uint8_t>& rgb() const { return rgb_; }

  // All drawing is clipped to the canvas.
  void fill_rect(const Rect& r, uint32_t rgb);
  // Mixes `rgb` into the pixel with weight `alpha` in [0, 1].
  void blend(int x, int y, uint32_t rgb, double alpha);

  // An anti-aliased line through `points`, `thickness` pixels wide with round ends and joints,
  // drawn only inside `clip`. A single point draws a dot of that diameter.
  void polyline(const std::vector<Point>& points, uint32_t rgb, double thickness, const Rect& clip);
  void line(Point a, Point b, uint32_t rgb, double thickness);

  // stb_easy_font text with its top-left corner at (x, y), each font pixel a scale x scale
  // block. Characters outside printable ASCII are drawn as '?'.
  void text(int x, int y, std::string_view s, uint32_t rgb, int scale);
  // The same turned 90 degrees counter-clockwise (reading upwards); (x, y) is where the top-left
  // corner of the unturned text goes, which becomes the bottom-left corner.
  void text_up(int x, int y, std::string_view s, uint32_t rgb, int scale);
  static int text_width(std::string_view s, int scale);
  // Capital height and full height with descenders ('g', 'p', 'y').
  static int cap_height(int scale) { return 7 * scale; }
  static int text_height(int scale) { return 9 * scale; }

  void write_png(const std::string& path) const;

 private:
  int width_, height_;
  std::vector<uint8_t> rgb_;
};

// ---------------------------------------------------------------------------------------------
// Learning curves

struct Series {
  std::string name;
  // Same length. A non-finite x or y (and y <= 0 on a log axis) breaks the line there; a value
  // between two gaps is drawn as a dot. Values that exist only every few epochs (validation)
  // should be passed at those epochs alone, not padded with NaN, to be joined by a line.
  std::vector<double> x, y;
  uint32_t rgb = 0;
};

struct CurvePanel {
  std::string y_label;
  std::vector<Series> series;
  bool log_y = false;
};

// matplotlib's first colours (as in nnU-Net's progress.png), for callers without a preference.
inline constexpr std::array<uint32_t, 6> kPlotColours = {0x1f77b4, 0xff7f0e, 0x2ca02c,
                                                         0xd62728, 0x9467bd, 0x8c564b};

// Figure size: kCurvesWidth wide; the title band, then the panels top to bottom, each
// kCurvesPanelHeight tall, then the band of the x-axis label.
inline constexpr int kCurvesWidth = 960;
inline constexpr int kCurvesTitleHeight = 44;
inline constexpr int kCurvesPanelHeight = 250;
inline constexpr int kCurvesFooterHeight = 30;

// One panel per element of `panels`, stacked, sharing the x-axis (the epoch). Each panel's legend
// lists its named series (an unnamed one is drawn but not listed). Throws
// std::invalid_argument for no panels or a series whose x and y differ in length, and
// io::FileError (naming `path`) when the file cannot be written.
void plot_curves(const std::string& path, const std::vector<CurvePanel>& panels,
                 const std::string& title, const std::string& x_label = "epoch");

// ---------------------------------------------------------------------------------------------
// Prediction overlays

struct OverlayInput {
  int channels = 0, height = 0, width = 0;
  const float* image = nullptr;       // channels x height x width
  const float* truth = nullptr;       // height x width, tumour where > 0.5; null when unknown
  const float* prediction = nullptr;  // height x width, probabilities
  float threshold = 0.5f;             // prediction > threshold is tumour
  bool show_probabilities = false;    // prediction panel: greyscale probabilities, not the mask
  // One channel index: a greyscale image; three: an RGB composite. Each channel is stretched
  // from its 1st to its 99th percentile.
  std::vector<int> display_channels = {0};
  std::string header;  // a line above the panels, e.g. "TCGA_CS_4941 slice 12  Dice 0.87"
  int scale = 1;       // each image pixel becomes scale x scale figure pixels (1 to 8)
};

inline constexpr uint32_t kTruthContour = 0x00ff00;
inline constexpr uint32_t kPredictionContour = 0xff0000;
inline constexpr uint32_t kBothContours = 0xffff00;  // where truth and prediction share an edge

// Where plot_overlay draws: the figure size and the top-left corner of each image panel, in the
// order image, truth (only when given), prediction, overlay. Each panel is width*scale by
// height*scale; its caption sits above it.
struct OverlayLayout {
  int width = 0, height = 0;
  int top = 0;
  std::vector<int> left;
};
OverlayLayout overlay_layout(const OverlayInput& in);

// The overlay panel shows the image with the inner boundary pixels of the truth (green) and the
// thresholded prediction (red) painted over it; a mask pixel is on the boundary when a
// 4-neighbour is outside the mask or the image. Throws std::invalid_argument for inconsistent
// input and io::FileError (naming `path`) when the file cannot be written.
void plot_overlay(const std::string& path, const OverlayInput& in);

}  // namespace unet
