// Figures: the canvas primitives, then learning curves and prediction overlays written to a
// temporary folder and read back with io::read_image: sizes, colours where they belong, contours
// exactly on mask boundaries, gaps and degenerate series, and write errors.
#include <catch2/catch.hpp>
#include <cmath>

#include "tests/io/io_test_support.h"
#include "train/io/image.h"
#include "train/plot.h"

using namespace unet;
using Catch::Matchers::Contains;
using unet::io::test::TempDir;

namespace {

constexpr uint32_t kWhite = 0xffffff, kBlack = 0x000000;

uint32_t pixel_of(const io::Image& image, int x, int y) {
  const float* p = image.pixels.data() + (std::size_t(y) * image.width + x) * image.channels;
  return uint32_t(p[0]) << 16 | uint32_t(p[1]) << 8 | uint32_t(p[2]);
}

struct Pixel {
  int x, y;
};

// The pixels of exactly `rgb` in rows [top, bottom): where a line covers a pixel completely, the
// pixel has the line's colour exactly, so these are the lines' cores.
std::vector<Pixel> pixels_of(const io::Image& image, uint32_t rgb, int top, int bottom) {
  std::vector<Pixel> found;
  for (int y = top; y < bottom; ++y) {
    for (int x = 0; x < image.width; ++x) {
      if (pixel_of(image, x, y) == rgb) found.push_back({x, y});
    }
  }
  return found;
}

int panel_top(int panel) { return kCurvesTitleHeight + panel * kCurvesPanelHeight; }

std::vector<Pixel> in_panel(const io::Image& image, uint32_t rgb, int panel) {
  return pixels_of(image, rgb, panel_top(panel), panel_top(panel + 1));
}

double mean_y(const std::vector<Pixel>& pixels) {
  double sum = 0;
  for (const Pixel& p : pixels) sum += p.y;
  return sum / double(pixels.size());
}

// Whether some size x size square of the image is all `rgb` (a legend swatch; no line is that
// thick).
bool has_square(const io::Image& image, uint32_t rgb, int size) {
  for (int y = 0; y + size <= image.height; ++y) {
    for (int x = 0; x + size <= image.width; ++x) {
      bool all = true;
      for (int j = 0; j < size && all; ++j) {
        for (int i = 0; i < size && all; ++i) all = pixel_of(image, x + i, y + j) == rgb;
      }
      if (all) return true;
    }
  }
  return false;
}

Series ramp(const std::string& name, uint32_t rgb, int points) {
  Series s{name, {}, {}, rgb};
  for (int i = 0; i < points; ++i) {
    s.x.push_back(i);
    s.y.push_back(double(i) / (points - 1));
  }
  return s;
}

io::Image curves(const TempDir& dir, const std::vector<CurvePanel>& panels) {
  std::string path = dir.file("progress.png");
  plot_curves(path, panels, "a title");
  return io::read_image(path);
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Canvas

TEST_CASE("Canvas: rectangles are clipped to the canvas", "[plot]") {
  Canvas canvas(10, 8, kWhite);
  canvas.fill_rect({-5, -5, 8, 7}, 0x102030);
  canvas.fill_rect({20, 20, 5, 5}, 0x102030);
  CHECK(canvas.pixel(0, 0) == 0x102030);
  CHECK(canvas.pixel(2, 1) == 0x102030);
  CHECK(canvas.pixel(3, 0) == kWhite);
  CHECK(canvas.pixel(0, 2) == kWhite);
  CHECK(canvas.pixel(9, 7) == kWhite);
  CHECK_THROWS_AS(Canvas(0, 5, kWhite), std::invalid_argument);
}

TEST_CASE("Canvas: text stays in its box, upright and turned", "[plot]") {
  const std::string s = "Hg7";
  const int scale = 2, w = Canvas::text_width(s, scale), h = Canvas::text_height(scale);
  REQUIRE(w > 0);

  Canvas flat(100, 40, kWhite);
  flat.text(10, 5, s, kBlack, scale);
  Canvas up(40, 100, kWhite);
  up.text_up(5, 90, s, kBlack, scale);
  int flat_ink = 0, up_ink = 0;
  for (int y = 0; y < 40; ++y) {
    for (int x = 0; x < 100; ++x) {
      if (flat.pixel(x, y) != kWhite) {
        ++flat_ink;
        CHECK((x >= 10 && x < 10 + w && y >= 5 && y < 5 + h));
      }
      if (up.pixel(y, x) != kWhite) {
        ++up_ink;
        CHECK((y >= 5 && y < 5 + h && x >= 90 - w && x < 90));
      }
    }
  }
  CHECK(flat_ink > 20);
  CHECK(up_ink == flat_ink);
  // 'H' spans the capital height exactly: its top row is the text's top row.
  CHECK(flat.pixel(10, 5) == kBlack);
  CHECK(flat.pixel(10, 5 + Canvas::cap_height(scale) - 1) == kBlack);
}

TEST_CASE("Canvas: characters outside printable ASCII draw as '?'", "[plot]") {
  Canvas odd(60, 20, kWhite), question(60, 20, kWhite);
  odd.text(2, 2, "a\x01\xe9", kBlack, 1);
  question.text(2, 2, "a??", kBlack, 1);
  CHECK(odd.rgb() == question.rgb());
}

TEST_CASE("Canvas: thick lines cover their width, dots their diameter", "[plot]") {
  Canvas canvas(80, 40, kWhite);
  canvas.line({10, 20}, {50, 20}, 0x0000ff, 3);
  for (int y : {19, 20, 21}) CHECK(canvas.pixel(30, y) == 0x0000ff);
  CHECK(canvas.pixel(30, 23) == kWhite);
  CHECK(canvas.pixel(56, 20) == kWhite);

  canvas.polyline({{65, 10}}, 0xff0000, 5, {0, 0, 80, 40});
  CHECK(canvas.pixel(65, 10) == 0xff0000);
  CHECK(canvas.pixel(66, 11) == 0xff0000);
  CHECK(canvas.pixel(65, 14) == kWhite);

  // Nothing outside the clip rectangle.
  canvas.polyline({{0, 5}, {79, 5}}, 0x00ff00, 3, {20, 0, 10, 40});
  CHECK(canvas.pixel(25, 5) == 0x00ff00);
  CHECK(canvas.pixel(19, 5) == kWhite);
  CHECK(canvas.pixel(30, 5) == kWhite);
}

// ---------------------------------------------------------------------------------------------
// Learning curves

TEST_CASE("plot_curves: size and background as documented", "[plot]") {
  TempDir dir;
  io::Image image = curves(dir, {{"loss", {ramp("train loss", kPlotColours[0], 30)}},
                                 {"Dice", {ramp("val Dice", kPlotColours[1], 30)}},
                                 {"lr", {ramp("lr", kPlotColours[2], 30)}, true}});
  CHECK(image.width == kCurvesWidth);
  CHECK(image.height == kCurvesTitleHeight + 3 * kCurvesPanelHeight + kCurvesFooterHeight);
  CHECK(image.channels == 3);
  CHECK(pixel_of(image, 0, 0) == kPlotBackground);
  CHECK(pixel_of(image, image.width - 1, image.height - 1) == kPlotBackground);
}

TEST_CASE("plot_curves: each series is drawn in its own panel, rising as it rises", "[plot]") {
  TempDir dir;
  const uint32_t a = 0xd62728, b = 0x1f77b4;
  Series flat{"", {0, 20}, {3, 3}, b};
  io::Image image = curves(dir, {{"rising", {ramp("", a, 21)}}, {"flat", {flat}}});

  std::vector<Pixel> a0 = in_panel(image, a, 0), b1 = in_panel(image, b, 1);
  CHECK(a0.size() > 300);
  CHECK(b1.size() > 300);
  CHECK(in_panel(image, a, 1).empty());
  CHECK(in_panel(image, b, 0).empty());

  std::vector<Pixel> left, right;
  for (const Pixel& p : a0) (p.x < kCurvesWidth / 3 ? left : right).push_back(p);
  REQUIRE(!left.empty());
  REQUIRE(!right.empty());
  CHECK(mean_y(left) > mean_y(right) + 50);  // screen y grows downwards

  // The flat series is one horizontal line: its full-coverage pixels share a few rows.
  int min_y = b1.front().y, max_y = b1.back().y;
  CHECK(max_y - min_y <= 2);
}

TEST_CASE("plot_curves: named series get a legend swatch, unnamed ones none", "[plot]") {
  TempDir dir;
  CHECK(has_square(curves(dir, {{"loss", {ramp("train loss", 0x9467bd, 10)}}}), 0x9467bd, 14));
  CHECK_FALSE(has_square(curves(dir, {{"loss", {ramp("", 0x9467bd, 10)}}}), 0x9467bd, 14));
}

TEST_CASE("plot_curves: NaN and infinite values are gaps", "[plot]") {
  TempDir dir;
  const uint32_t c = 0x2ca02c;
  Series whole = ramp("", c, 9);
  Series gappy = whole;
  for (std::size_t i = 1; i < gappy.y.size(); i += 2) gappy.y[i] = i % 4 == 1 ? NAN : INFINITY;
  Series nothing{"nothing", {0, 1, 2}, {NAN, NAN, NAN}, 0x8c564b};
  Series bad_x{"", {0, NAN, 2}, {1, 1, 1}, 0xff7f0e};

  std::size_t whole_count = in_panel(curves(dir, {{"y", {whole}}}), c, 0).size();
  io::Image image = curves(dir, {{"y", {gappy, nothing, bad_x}}});
  std::size_t gappy_count = in_panel(image, c, 0).size();
  // Five separate dots instead of a line across the panel.
  CHECK(gappy_count > 0);
  CHECK(gappy_count * 3 < whole_count);
  CHECK(!in_panel(image, 0xff7f0e, 0).empty());
}

TEST_CASE("plot_curves: a single point plots, on linear and log axes", "[plot]") {
  TempDir dir;
  for (double y : {0.0, 0.5, 1e-3}) {
    for (bool log_y : {false, true}) {
      if (log_y && y <= 0) continue;
      CAPTURE(y, log_y);
      io::Image image = curves(dir, {{"y", {Series{"", {3}, {y}, 0xd62728}}, log_y}});
      CHECK(!in_panel(image, 0xd62728, 0).empty());
    }
  }
}

TEST_CASE("plot_curves: a log axis skips values that are not positive", "[plot]") {
  TempDir dir;
  Series lr{"", {0, 1, 2, 3, 4}, {1e-2, 5e-3, 0, -1, 1e-4}, 0x9467bd};
  io::Image image = curves(dir, {{"lr", {lr}, true}});
  CHECK(in_panel(image, 0x9467bd, 0).size() > 100);
}

TEST_CASE("plot_curves: panels without series still have axes", "[plot]") {
  TempDir dir;
  io::Image image = curves(dir, {{"loss", {}}, {"lr", {}, true}});
  CHECK(image.height == kCurvesTitleHeight + 2 * kCurvesPanelHeight + kCurvesFooterHeight);
  for (int panel : {0, 1}) {
    CAPTURE(panel);
    // The frame's top edge: a long run of one colour other than the background in a row.
    int longest = 0;
    for (int y = panel_top(panel); y < panel_top(panel + 1); ++y) {
      int run = 0;
      for (int x = 1; x < image.width; ++x) {
        bool same = pixel_of(image, x, y) == pixel_of(image, x - 1, y) &&
                    pixel_of(image, x, y) != kPlotBackground;
        run = same ? run + 1 : 0;
        longest = std::max(longest, run);
      }
    }
    CHECK(longest > kCurvesWidth / 2);
  }
}

TEST_CASE("plot_curves: invalid input and unwritable paths throw", "[plot]") {
  TempDir dir;
  Series uneven{"val loss", {0, 1, 2}, {1, 2}, 0};
  CHECK_THROWS_WITH(plot_curves(dir.file("a.png"), {{"loss", {uneven}}}, ""), Contains("val loss"));
  CHECK_THROWS_AS(plot_curves(dir.file("a.png"), {}, ""), std::invalid_argument);

  const std::string path = dir.file("no/such/folder/progress.png");
  CHECK_THROWS_WITH(plot_curves(path, {{"loss", {ramp("x", 0, 3)}}}, "t"), Contains(path));
  CHECK_THROWS_AS(plot_curves(path, {{"loss", {}}}, "t"), io::FileError);
}

// ---------------------------------------------------------------------------------------------
// Prediction overlays

namespace {

constexpr int kH = 20, kW = 24;

// A grey gradient with a truth disc at (10, 10), and a predicted disc at (13, 10) plus a block in
// the top-right corner (whose contour must follow the image's edges) of probability 0.8 (0.2
// elsewhere).
struct Discs {
  std::vector<float> image, truth, prediction;
  Discs() : image(kH * kW), truth(kH * kW), prediction(kH * kW) {
    for (int y = 0; y < kH; ++y) {
      for (int x = 0; x < kW; ++x) {
        int i = y * kW + x;
        image[i] = float(x + 2 * y);
        truth[i] = std::hypot(x - 10, y - 10) <= 6 ? 1.0f : 0.0f;
        bool predicted = std::hypot(x - 13, y - 10) <= 5 || (x >= kW - 4 && y < 4);
        prediction[i] = predicted ? 0.8f : 0.2f;
      }
    }
  }
  OverlayInput input(int scale) const {
    OverlayInput in;
    in.channels = 1, in.height = kH, in.width = kW;
    in.image = image.data(), in.truth = truth.data(), in.prediction = prediction.data();
    in.scale = scale;
    return in;
  }
};

bool inside(const std::vector<float>& mask, float threshold, int x, int y) {
  return x >= 0 && y >= 0 && x < kW && y < kH && mask[y * kW + x] > threshold;
}

bool boundary(const std::vector<float>& mask, float threshold, int x, int y) {
  return inside(mask, threshold, x, y) &&
         (!inside(mask, threshold, x - 1, y) || !inside(mask, threshold, x + 1, y) ||
          !inside(mask, threshold, x, y - 1) || !inside(mask, threshold, x, y + 1));
}

io::Image overlay(const TempDir& dir, const OverlayInput& in) {
  std::string path = dir.file("overlay.png");
  plot_overlay(path, in);
  return io::read_image(path);
}

// The figure pixel at the top-left of image pixel (x, y) in panel `panel`.
uint32_t panel_pixel(const io::Image& image, const OverlayLayout& layout, const OverlayInput& in,
                     int panel, int x, int y) {
  return pixel_of(image, layout.left[panel] + x * in.scale, layout.top + y * in.scale);
}

}  // namespace

TEST_CASE("plot_overlay: size and panel positions as documented", "[plot]") {
  TempDir dir;
  Discs discs;
  OverlayInput in = discs.input(2);
  in.header = "TCGA_CS_4941 slice 12  Dice 0.87";
  OverlayLayout layout = overlay_layout(in);
  io::Image image = overlay(dir, in);
  CHECK(image.width == layout.width);
  CHECK(image.height == layout.height);
  REQUIRE(layout.left.size() == 4);
  for (std::size_t i = 1; i < 4; ++i) CHECK(layout.left[i] >= layout.left[i - 1] + kW * 2);
  CHECK(layout.left[3] + kW * 2 <= layout.width);
  CHECK(layout.top + kH * 2 <= layout.height);
  CHECK(pixel_of(image, 0, 0) == kPlotBackground);

  OverlayInput plain = discs.input(2);
  CHECK(overlay_layout(plain).top < layout.top);  // no header line
  plain.truth = nullptr;
  CHECK(overlay_layout(plain).left.size() == 3);
}

TEST_CASE("plot_overlay: contours lie exactly on the mask boundaries", "[plot]") {
  TempDir dir;
  Discs discs;
  for (int scale : {1, 2}) {
    CAPTURE(scale);
    OverlayInput in = discs.input(scale);
    OverlayLayout layout = overlay_layout(in);
    io::Image image = overlay(dir, in);
    int green = 0, red = 0, both = 0;
    for (int y = 0; y < kH; ++y) {
      for (int x = 0; x < kW; ++x) {
        CAPTURE(x, y);
        bool t = boundary(discs.truth, 0.5f, x, y), p = boundary(discs.prediction, 0.5f, x, y);
        uint32_t expected = t && p ? kBothContours
                            : t    ? kTruthContour
                            : p    ? kPredictionContour
                                   : panel_pixel(image, layout, in, 0, x, y);
        green += t && !p, red += p && !t, both += t && p;
        for (int j = 0; j < scale; ++j) {
          for (int i = 0; i < scale; ++i) {
            CHECK(pixel_of(image, layout.left[3] + x * scale + i, layout.top + y * scale + j) ==
                  expected);
          }
        }
      }
    }
    CHECK(green > 10);
    CHECK(red > 10);
    CHECK(both > 0);
  }
}

TEST_CASE("plot_overlay: truth and prediction panels show the masks", "[plot]") {
  TempDir dir;
  Discs discs;
  OverlayInput in = discs.input(1);
  OverlayLayout layout = overlay_layout(in);
  io::Image masks = overlay(dir, in);
  in.show_probabilities = true;
  io::Image probabilities = overlay(dir, in);
  for (int y = 0; y < kH; ++y) {
    for (int x = 0; x < kW; ++x) {
      CAPTURE(x, y);
      bool t = inside(discs.truth, 0.5f, x, y), p = inside(discs.prediction, 0.5f, x, y);
      CHECK(panel_pixel(masks, layout, in, 1, x, y) == (t ? kWhite : kBlack));
      CHECK(panel_pixel(masks, layout, in, 2, x, y) == (p ? kWhite : kBlack));
      CHECK(panel_pixel(probabilities, layout, in, 2, x, y) == (p ? 0xcccccc : 0x333333));
    }
  }
}

TEST_CASE("plot_overlay: without truth, only the prediction's contour", "[plot]") {
  TempDir dir;
  Discs discs;
  OverlayInput in = discs.input(1);
  in.truth = nullptr;
  OverlayLayout layout = overlay_layout(in);
  io::Image image = overlay(dir, in);
  int red = 0;
  for (int y = 0; y < kH; ++y) {
    for (int x = 0; x < kW; ++x) {
      uint32_t rgb = panel_pixel(image, layout, in, 2, x, y);
      CHECK(rgb != kTruthContour);
      red += rgb == kPredictionContour;
      CHECK((rgb == kPredictionContour) == boundary(discs.prediction, 0.5f, x, y));
    }
  }
  CHECK(red > 10);

  in.threshold = 0.9f;  // nothing predicted: no contour at all
  image = overlay(dir, in);
  for (int y = 0; y < kH; ++y) {
    for (int x = 0; x < kW; ++x)
      CHECK(panel_pixel(image, layout, in, 2, x, y) != kPredictionContour);
  }
}

TEST_CASE("plot_overlay: the image is stretched between its 1st and 99th percentiles", "[plot]") {
  TempDir dir;
  Discs discs;
  std::vector<float> ramp(kH * kW);
  for (std::size_t i = 0; i < ramp.size(); ++i) ramp[i] = float(i);
  ramp[kW + 1] = 1e6f;  // one hot pixel must not darken the rest
  ramp[kW + 2] = NAN;
  OverlayInput in = discs.input(1);
  in.image = ramp.data();
  OverlayLayout layout = overlay_layout(in);
  io::Image image = overlay(dir, in);
  CHECK(panel_pixel(image, layout, in, 0, 0, 0) == kBlack);
  CHECK(panel_pixel(image, layout, in, 0, 1, 1) == kWhite);
  CHECK(panel_pixel(image, layout, in, 0, 2, 1) == kBlack);            // NaN
  CHECK(panel_pixel(image, layout, in, 0, kW - 1, kH - 1) == kWhite);  // above the 99th
  uint32_t middle = panel_pixel(image, layout, in, 0, kW / 2, kH / 2) & 0xff;
  CHECK(middle > 110);
  CHECK(middle < 145);
}

TEST_CASE("plot_overlay: three display channels make an RGB composite", "[plot]") {
  TempDir dir;
  Discs discs;
  // Channel 0 grows with x, channel 1 is constant (shows black), channel 2 grows with y.
  std::vector<float> image(3 * kH * kW, 5.0f);
  for (int y = 0; y < kH; ++y) {
    for (int x = 0; x < kW; ++x) {
      image[y * kW + x] = float(x);
      image[2 * kH * kW + y * kW + x] = float(y);
    }
  }
  OverlayInput in = discs.input(1);
  in.channels = 3;
  in.image = image.data();
  in.display_channels = {0, 1, 2};
  OverlayLayout layout = overlay_layout(in);
  io::Image figure = overlay(dir, in);
  CHECK(panel_pixel(figure, layout, in, 0, kW - 1, 0) == 0xff0000);
  CHECK(panel_pixel(figure, layout, in, 0, 0, kH - 1) == 0x0000ff);
  CHECK(panel_pixel(figure, layout, in, 0, 0, 0) == kBlack);
}

TEST_CASE("plot_overlay: invalid input and unwritable paths throw", "[plot]") {
  TempDir dir;
  Discs discs;
  auto invalid = [&](auto change) {
    OverlayInput in = discs.input(1);
    change(in);
    return in;
  };
  CHECK_THROWS_AS(plot_overlay(dir.file("a.png"), invalid([](OverlayInput& in) { in.scale = 0; })),
                  std::invalid_argument);
  CHECK_THROWS_AS(
      plot_overlay(dir.file("a.png"), invalid([](OverlayInput& in) { in.display_channels = {1}; })),
      std::invalid_argument);
  CHECK_THROWS_AS(plot_overlay(dir.file("a.png"), invalid([](OverlayInput& in) {
                                 in.display_channels = {0, 0};
                               })),
                  std::invalid_argument);
  CHECK_THROWS_AS(
      plot_overlay(dir.file("a.png"), invalid([](OverlayInput& in) { in.prediction = nullptr; })),
      std::invalid_argument);
  CHECK(dir.entries() == 0);

  const std::string path = dir.file("missing/overlay.png");
  CHECK_THROWS_WITH(plot_overlay(path, discs.input(1)), Contains(path));
}
