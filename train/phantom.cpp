// Synthetic brain-MRI phantom; the anatomy model and the contrast table are described in
// phantom.h. Structure of this file:
//   1. random numbers (SplitMix64, Box-Muller, keyed streams)
//   2. geometry helpers (smooth steps, ellipse distances, lobulated outlines, value noise)
//   3. the patient model: everything random about one patient, drawn once from its stream
//   4. the slice geometry: the patient model evaluated at one axial position
//   5. per-pixel tissue fractions, then rendering (contrasts, bias field, Rician noise)
// Coordinates: x to the right, y downwards (anterior at the top), the field of view is [-1, 1]^2
// and lengths are in those units unless a name says _px.
#include "train/phantom.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <stdexcept>

namespace unet {
namespace {

constexpr double kPi = 3.14159265358979323846;

// ---------------------------------------------------------------------------------------------
// 1. Random numbers

// SplitMix64's output function: a bijective 64-bit mix with good avalanche. It is the generator's
// output and also hashes keys, so that every (seed, patient, index) gets its own stream.
uint64_t mix64(uint64_t x) {
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

constexpr uint64_t kGolden = 0x9E3779B97F4A7C15ull;

uint64_t hash_combine(uint64_t h, uint64_t value) { return mix64(h + kGolden + value); }

// Tags keep the streams apart: the patient stream must not depend on the slice index, and the
// slice stream (noise) must differ between slices.
enum class Stream : uint64_t { patient = 1, slice = 2, lattice = 3 };

uint64_t stream_key(uint64_t seed, Stream stream, uint64_t a, uint64_t b = 0) {
  uint64_t h = hash_combine(mix64(seed ^ 0x7068616E746F6D00ull), static_cast<uint64_t>(stream));
  return hash_combine(hash_combine(h, a), b);
}

class Rng {
 public:
  explicit Rng(uint64_t key) : state_(key) {}

  uint64_t next() {
    state_ += kGolden;
    return mix64(state_);
  }
  // Uniform in [0, 1) from the top 53 bits.
  double uniform() { return static_cast<double>(next() >> 11) * (1.0 / 9007199254740992.0); }
  double uniform(double lo, double hi) { return lo + (hi - lo) * uniform(); }
  // Box-Muller in Marsaglia's polar form: two independent standard normals from a uniform
  // point of the unit disc, without the sine and cosine of the basic form. It is the inner loop
  // of the noise, hence float, and both coordinates (24 bits each) come from one draw.
  void normal_pair(float& a, float& b) {
    constexpr float kUnit = 1.0f / 8388608.0f;  // 2^-23: 24-bit integers to [0, 2)
    float u = 0.0f, v = 0.0f, r2 = 0.0f;
    do {
      const uint64_t bits = next();
      u = static_cast<float>(bits >> 40) * kUnit - 1.0f;
      v = static_cast<float>((bits >> 8) & 0xFFFFFF) * kUnit - 1.0f;
      r2 = u * u + v * v;
    } while (r2 >= 1.0f || r2 == 0.0f);
    const float scale = std::sqrt(-2.0f * std::log(r2) / r2);
    a = u * scale;
    b = v * scale;
  }

 private:
  uint64_t state_;
};

// ---------------------------------------------------------------------------------------------
// 2. Geometry helpers

// Fraction of a pixel inside a boundary, from the signed distance (pixels, negative inside) of
// its centre: a smooth step 1.5 pixels wide rather than a hard threshold, which mimics the
// partial-volume averaging of a real scanner at tissue edges.
double inside(double distance_px) {
  const double t = std::clamp(0.5 - distance_px / 1.5, 0.0, 1.0);
  return t * t * (3.0 - 2.0 * t);
}

// Point (u, v) relative to an axis-aligned ellipse with semi-axes (a, b): the normalised radius
// rho (1 on the ellipse), the direction (cos, sin) of the normalised point, and the length of
// rho's gradient. (rho - r) / grad approximates the signed distance to the curve rho = r, good
// near the curve, which is all a smooth step needs.
struct EllipsePoint {
  double rho, cos_t, sin_t, grad;
};

EllipsePoint ellipse_point(double u, double v, double a, double b) {
  const double nu = u / a, nv = v / b;
  const double rho = std::sqrt(nu * nu + nv * nv);
  if (rho < 1e-12) return {0.0, 1.0, 0.0, 1.0 / std::min(a, b)};
  const double cos_t = nu / rho, sin_t = nv / rho;
  const double grad = std::sqrt(cos_t * cos_t / (a * a) + sin_t * sin_t / (b * b));
  return {rho, cos_t, sin_t, grad};
}

// Signed distance from the point to the scaled outline rho = r (negative inside).
double distance_to(const EllipsePoint& p, double r) { return (p.rho - r) / p.grad; }

constexpr int kMaxOrder = 8;

// Random radial harmonics of a closed outline, r(theta) = 1 + sum_k a_k cos(k theta + phi_k).
// The phases drift along the slice axis, so the outline changes smoothly from slice to slice.
struct Lobes {
  std::array<double, kMaxOrder> amplitude{}, phase{}, drift{};  // entry k - 1 is order k
  int orders = 0;                                               // highest order used

  // An upper bound of r(theta), for quick rejection of far-away pixels.
  double max_radius() const {
    double r = 1.0;
    for (double a : amplitude) r += a;
    return r;
  }
};

// Orders first..last with amplitudes up to strength / k, falling with the order so the outline
// stays smooth; r(theta) >= 1 - strength * (1 / first + ... + 1 / last) keeps it positive.
Lobes random_lobes(Rng& rng, int first, int last, double strength, double drift) {
  Lobes lobes;
  for (int k = first; k <= last; ++k) {
    lobes.amplitude[k - 1] = strength * rng.uniform() / k;
    lobes.phase[k - 1] = 2.0 * kPi * rng.uniform();
    lobes.drift[k - 1] = drift * rng.uniform(-1.0, 1.0);
  }
  lobes.orders = last;
  return lobes;
}

// Lobes at one position t along the slice axis, as cosine and sine coefficients: then
// cos(k theta + phi) = cos(k theta) cos(phi) - sin(k theta) sin(phi) is evaluated per pixel by
// rotating (cos theta, sin theta) k times, with no trigonometric calls.
class Outline {
 public:
  Outline() = default;
  Outline(const Lobes& lobes, double t) : orders_(lobes.orders) {
    for (int k = 0; k < orders_; ++k) {
      const double phase = lobes.phase[k] + lobes.drift[k] * t;
      c_[k] = lobes.amplitude[k] * std::cos(phase);
      s_[k] = -lobes.amplitude[k] * std::sin(phase);
    }
  }
  double radius(double cos_t, double sin_t) const {
    double cos_k = 1.0, sin_k = 0.0, r = 1.0;
    for (int k = 0; k < orders_; ++k) {
      const double next_cos = cos_k * cos_t - sin_k * sin_t;
      sin_k = sin_k * cos_t + cos_k * sin_t;
      cos_k = next_cos;
      r += c_[k] * cos_k + s_[k] * sin_k;
    }
    return r;
  }

 private:
  std::array<double, kMaxOrder> c_{}, s_{};
  int orders_ = 0;
};

double smooth01(double t) { return t * t * (3.0 - 2.0 * t); }

// A function sampled at the corners of a cells x cells lattice over the field of view and
// interpolated smoothly (smoothstep weights) in between. It carries the random textures and the
// bias field, which vary slowly enough that sampling them coarsely loses nothing visible.
class LatticeField {
 public:
  LatticeField() = default;
  // `sample(ix, iy)` gives the value at lattice corner (ix, iy), 0 <= ix, iy <= cells, which
  // lies at field-of-view coordinates (-1 + 2 ix / cells, -1 + 2 iy / cells).
  template <class Sample>
  LatticeField(int cells, Sample sample)
      : cells_(cells), values_(static_cast<size_t>((cells + 1) * (cells + 1))) {
    for (int iy = 0; iy <= cells; ++iy)
      for (int ix = 0; ix <= cells; ++ix) values_[iy * (cells + 1) + ix] = sample(ix, iy);
  }
  double at(double x, double y) const {
    const double gx = std::clamp((x + 1.0) * 0.5 * cells_, 0.0, cells_ - 1e-9);
    const double gy = std::clamp((y + 1.0) * 0.5 * cells_, 0.0, cells_ - 1e-9);
    const int ix = static_cast<int>(gx), iy = static_cast<int>(gy);
    const double wx = smooth01(gx - ix), wy = smooth01(gy - iy);
    const double* row = &values_[iy * (cells_ + 1) + ix];
    const double top = (1.0 - wx) * row[0] + wx * row[1];
    const double bottom = (1.0 - wx) * row[cells_ + 1] + wx * row[cells_ + 2];
    return (1.0 - wy) * top + wy * bottom;
  }

 private:
  int cells_ = 1;
  std::vector<double> values_;
};

// Uniform in [-1, 1) at the integer lattice point (ix, iy, iz) of the texture `key`.
double lattice_value(uint64_t key, int ix, int iy, int64_t iz) {
  uint64_t h = hash_combine(key, static_cast<uint64_t>(ix));
  h = hash_combine(h, static_cast<uint64_t>(iy));
  h = hash_combine(h, static_cast<uint64_t>(iz));
  return static_cast<double>(h >> 11) * (2.0 / 9007199254740992.0) - 1.0;
}

// Smooth random texture in [-1, 1] (value noise) with `cells` cells across the field of view.
// The slice's plane is interpolated between two layers of a 3D lattice, so a patient's textures
// are continuous along the slice axis too (`z` in lattice units).
LatticeField value_noise(uint64_t key, int cells, double z) {
  const double floor_z = std::floor(z);
  const auto iz = static_cast<int64_t>(floor_z);
  const double w = smooth01(z - floor_z);
  return LatticeField(cells, [&](int ix, int iy) {
    return (1.0 - w) * lattice_value(key, ix, iy, iz) + w * lattice_value(key, ix, iy, iz + 1);
  });
}

// ---------------------------------------------------------------------------------------------
// 3. The patient model

using TissueValues = std::array<double, kPhantomTissues>;
constexpr int kContrasts = 4;
constexpr int kBackground = 0, kScalp = 1, kSkull = 2, kCsf = 3, kGrey = 4, kWhite = 5, kOedema = 6,
              kCore = 7, kRim = 8;

// The contrast table of phantom.h, one row per contrast (T1, FLAIR, T1 post-contrast, T2).
constexpr std::array<TissueValues, kContrasts> kBaseContrast = {{
    //  bg    scalp  skull  CSF    grey   white  oedema core   rim
    {0.00, 1.10, 0.08, 0.22, 0.72, 1.00, 0.70, 0.40, 0.75},  // T1
    {0.00, 0.75, 0.06, 0.10, 0.85, 0.70, 1.20, 0.90, 1.05},  // FLAIR
    {0.00, 1.10, 0.08, 0.25, 0.72, 1.00, 0.70, 0.42, 1.35},  // T1 post-contrast
    {0.00, 0.80, 0.06, 1.40, 0.85, 0.62, 1.15, 1.25, 0.95},  // T2
}};

struct HeadModel {
  double cx, cy, angle;              // centre and in-plane tilt
  double semi_x, semi_y;             // head semi-axes at the widest slice
  double scalp, skull, csf, cortex;  // layer thicknesses
  double sulci;                      // number of sulci around the brain
  double sulcus_depth;               // their mean depth below the brain surface
  double z_offset;                   // where the widest slice lies
  Lobes outline;                     // irregularity of the head outline
  // Right lateral ventricle in brain-centred coordinates (the left one is its mirror image).
  double ventricle_x, ventricle_y, ventricle_width, ventricle_length, ventricle_angle;
  double ventricle_bend;       // curvature: both horns point away from the midline
  double ventricle_asymmetry;  // left / right size ratio
  double ventricle_reach;      // half extent along the slice axis
  double deep_grey_x, deep_grey_y, deep_grey_size;  // thalamus / basal ganglia, mirrored
};

struct TumourModel {
  int first = 0, count = 0;         // slices [first, first + count) carry the tumour
  double cx = 0, cy = 0;            // centre in head coordinates, in the middle slice of the run
  double shift_x = 0, shift_y = 0;  // centre drift across the run
  double radius = 0, elongation = 1, angle = 0;
  double core_fraction = 0.5;  // core radius / lesion radius
  double oedema_reach = 0.5;   // oedema radius / lesion radius - 1
  Lobes lesion, core, oedema;
};

struct ChannelModel {
  TissueValues intensity;      // per tissue, after the per-patient jitter
  std::array<double, 6> bias;  // bias-field polynomial coefficients, sum of |.| = 1
  double gain;                 // global scanner gain
};

struct PatientModel {
  HeadModel head;
  TumourModel tumour;
  std::vector<ChannelModel> channels;
  double texture;        // relative amplitude of the healthy-tissue texture
  double heterogeneity;  // relative amplitude of the texture inside the tumour
  uint64_t noise_key;    // lattice key of the patient's textures
};

HeadModel draw_head(Rng& rng) {
  HeadModel h;
  h.cx = rng.uniform(-0.03, 0.03);
  h.cy = rng.uniform(-0.03, 0.03);
  h.angle = rng.uniform(-0.1, 0.1);
  h.semi_x = rng.uniform(0.66, 0.76);
  h.semi_y = rng.uniform(0.82, 0.90);
  h.scalp = rng.uniform(0.035, 0.05);
  h.skull = rng.uniform(0.035, 0.05);
  h.csf = rng.uniform(0.012, 0.022);
  h.cortex = rng.uniform(0.022, 0.032);
  h.sulcus_depth = rng.uniform(0.07, 0.11);
  h.sulci = std::round(rng.uniform(28.0, 40.0));
  h.z_offset = rng.uniform(-0.08, 0.08);
  h.outline = random_lobes(rng, 2, 5, 0.06, 1.5);
  h.ventricle_x = rng.uniform(0.05, 0.08);
  h.ventricle_y = rng.uniform(-0.08, 0.0);
  h.ventricle_width = rng.uniform(0.035, 0.06);
  h.ventricle_length = rng.uniform(0.20, 0.27);
  h.ventricle_angle = rng.uniform(-0.1, 0.15);
  h.ventricle_bend = rng.uniform(0.4, 1.4);
  h.ventricle_asymmetry = rng.uniform(0.8, 1.2);
  h.ventricle_reach = rng.uniform(0.22, 0.32);
  h.deep_grey_x = rng.uniform(0.20, 0.25);
  h.deep_grey_y = rng.uniform(0.0, 0.08);
  h.deep_grey_size = rng.uniform(0.06, 0.09);
  return h;
}

// The tumour's run of slices, its centre (a random point of the brain ellipse, not too close to
// its edge), size, shape and layers.
TumourModel draw_tumour(Rng& rng, const HeadModel& head, const PhantomOptions& options) {
  TumourModel t;
  const int n = options.slices_per_patient;
  t.count = static_cast<int>(std::lround(options.tumour_probability * n));
  if (options.tumour_probability > 0.0) t.count = std::max(t.count, 1);
  t.first = static_cast<int>(rng.uniform() * (n - t.count + 1));
  const double brain_x = head.semi_x - head.scalp - head.skull - head.csf;
  const double brain_y = head.semi_y - head.scalp - head.skull - head.csf;
  double px = 0.0, py = 0.0;
  do {
    px = rng.uniform(-1.0, 1.0);
    py = rng.uniform(-1.0, 1.0);
  } while (px * px + py * py > 1.0);
  t.cx = 0.55 * brain_x * px;
  t.cy = 0.55 * brain_y * py;
  t.shift_x = rng.uniform(-0.06, 0.06);
  t.shift_y = rng.uniform(-0.06, 0.06);
  // Squaring the uniform makes small tumours more common than large ones.
  const double u = rng.uniform();
  t.radius = 0.06 + 0.22 * u * u;
  t.elongation = rng.uniform(0.7, 1.0);
  t.angle = rng.uniform(0.0, kPi);
  t.core_fraction = rng.uniform(0.25, 0.7);
  t.oedema_reach = rng.uniform(0.15, 1.0);
  t.lesion = random_lobes(rng, 2, 6, rng.uniform(0.1, 0.4), 2.0);
  t.core = random_lobes(rng, 2, 5, 0.25, 2.0);
  t.oedema = random_lobes(rng, 2, 7, 0.45, 2.0);
  return t;
}

// Healthy tissues vary a little between patients; tumour tissues vary a lot, within the
// ranges of the table in phantom.h, so that the tumour is never one fixed grey level.
TissueValues draw_contrast(Rng& rng, int contrast) {
  TissueValues v = kBaseContrast[contrast];
  for (int t = kScalp; t <= kWhite; ++t) v[t] *= rng.uniform(0.95, 1.05);
  switch (contrast) {
    case 0:  // T1
    case 2:  // T1 post-contrast: as T1, plus enhancement of the rim
      v[kOedema] = rng.uniform(0.6, 0.85);
      v[kCore] = rng.uniform(0.25, 0.65);
      v[kRim] = contrast == 0 ? rng.uniform(0.6, 0.9) : rng.uniform(1.05, 1.35);
      if (contrast == 2) v[kCore] += 0.05;
      break;
    case 1:  // FLAIR
      v[kOedema] = rng.uniform(0.95, 1.35);
      v[kCore] = rng.uniform(0.55, 1.35);
      v[kRim] = rng.uniform(0.85, 1.25);
      break;
    default:  // T2
      v[kOedema] = rng.uniform(0.95, 1.3);
      v[kCore] = rng.uniform(1.0, 1.45);
      v[kRim] = rng.uniform(0.8, 1.1);
      break;
  }
  return v;
}

ChannelModel draw_channel(Rng& rng, int channel) {
  ChannelModel c;
  c.intensity = draw_contrast(rng, channel % kContrasts);
  double total = 0.0;
  for (double& b : c.bias) {
    b = rng.uniform(-1.0, 1.0);
    total += std::abs(b);
  }
  for (double& b : c.bias) b /= total;
  c.gain = rng.uniform(0.92, 1.05);
  return c;
}

PatientModel draw_patient(const PhantomOptions& options, uint64_t seed, uint64_t patient) {
  Rng rng(stream_key(seed, Stream::patient, patient));
  PatientModel p;
  p.head = draw_head(rng);
  p.tumour = draw_tumour(rng, p.head, options);
  for (int c = 0; c < options.channels; ++c) p.channels.push_back(draw_channel(rng, c));
  p.texture = rng.uniform(0.02, 0.05);
  p.heterogeneity = rng.uniform(0.05, 0.15);
  p.noise_key = stream_key(seed, Stream::lattice, patient);
  return p;
}

// ---------------------------------------------------------------------------------------------
// 4. The slice geometry: the patient model at one axial position

struct SliceGeometry {
  double px;              // pixels per field-of-view unit
  double z;               // axial position in [-0.5, 0.5]
  double cos_a, sin_a;    // head tilt
  double semi_x, semi_y;  // head semi-axes in this slice
  double scale;           // head cross-section relative to the widest slice
  Outline head_outline;
  double ventricle[2];  // size factor of the right and left ventricle (0: not in slice)
  double ventricle_cos, ventricle_sin;  // their tilt
  double deep_grey;                     // size factor of the deep-grey nuclei
  bool tumour = false;
  double tumour_x = 0, tumour_y = 0, tumour_a = 0, tumour_b = 0;  // centre and semi-axes
  double tumour_cos = 1, tumour_sin = 0;
  double tumour_extent = 0;  // no tumour tissue or oedema farther than this from the centre
  Outline lesion, core, oedema;
  LatticeField gyri, sulci, texture, heterogeneity;
  std::vector<LatticeField> bias;  // per channel
};

// Smooth bias field: exp(strength * polynomial) with |polynomial| <= 1, so the multiplicative
// inhomogeneity stays within exp(+-strength).
double bias_at(const ChannelModel& c, double strength, double x, double y, double z) {
  const double basis[6] = {x, y, 2.0 * z, x * y, 0.5 * (x * x - y * y), x * x + y * y - 1.0};
  double s = 0.0;
  for (int i = 0; i < 6; ++i) s += c.bias[i] * basis[i];
  return std::exp(strength * s);
}

// Size of a structure at axial distance d from its middle, with half extent `reach`:
// the cross-section of an ellipsoid.
double ellipsoid_section(double d, double reach) {
  const double q = std::abs(d) / reach;
  return q >= 1.0 ? 0.0 : std::sqrt(1.0 - q * q);
}

SliceGeometry slice_geometry(const PatientModel& p, const PhantomOptions& options, int slice) {
  const HeadModel& h = p.head;
  SliceGeometry g;
  g.px = 0.5 * options.size;
  g.z = (slice + 0.5) / options.slices_per_patient - 0.5;
  g.cos_a = std::cos(h.angle);
  g.sin_a = std::sin(h.angle);
  // The head is roughly an ellipsoid: the slice through its middle is the widest.
  g.scale = std::max(ellipsoid_section(g.z - h.z_offset, 1.0), 0.5);
  g.semi_x = h.semi_x * g.scale;
  g.semi_y = h.semi_y * g.scale;
  g.head_outline = Outline(h.outline, g.z);
  const double dz = g.z - h.z_offset;
  g.ventricle[0] = ellipsoid_section(dz, h.ventricle_reach);
  g.ventricle[1] = ellipsoid_section(dz, h.ventricle_reach * h.ventricle_asymmetry);
  g.ventricle_cos = std::cos(h.ventricle_angle);
  g.ventricle_sin = std::sin(h.ventricle_angle);
  g.deep_grey = ellipsoid_section(dz + 0.08, 0.2);

  const TumourModel& t = p.tumour;
  if (slice >= t.first && slice < t.first + t.count) {
    // Position within the run, -1 .. 1; the tumour is widest in its middle and never vanishes,
    // so every slice of the run has a non-empty mask.
    const double u = t.count > 1 ? 2.0 * (slice - t.first) / (t.count - 1) - 1.0 : 0.0;
    const double size = std::sqrt(1.0 - 0.75 * u * u);
    g.tumour = true;
    g.tumour_x = t.cx + 0.5 * u * t.shift_x;
    g.tumour_y = t.cy + 0.5 * u * t.shift_y;
    g.tumour_a = t.radius * size;
    g.tumour_b = t.radius * t.elongation * size;
    g.tumour_cos = std::cos(t.angle);
    g.tumour_sin = std::sin(t.angle);
    g.tumour_extent = std::max(g.tumour_a, g.tumour_b) * t.lesion.max_radius() *
                          (1.0 + t.oedema_reach) * t.oedema.max_radius() +
                      2.0 / g.px;
    g.lesion = Outline(t.lesion, u);
    g.core = Outline(t.core, u);
    g.oedema = Outline(t.oedema, u);
  }
  // Lattice spacing along z matches roughly the in-plane one (32 slices span a head).
  const double z_cells = g.z * 16.0;
  g.gyri = value_noise(hash_combine(p.noise_key, 1), 20, z_cells * 1.25);
  g.sulci = value_noise(hash_combine(p.noise_key, 4), 12, z_cells);
  g.texture = value_noise(hash_combine(p.noise_key, 2), 24, z_cells * 1.5);
  g.heterogeneity = value_noise(hash_combine(p.noise_key, 3), 30, z_cells * 2.0);
  for (const ChannelModel& c : p.channels) {
    constexpr int kCells = 16;
    g.bias.emplace_back(kCells, [&](int ix, int iy) {
      return bias_at(c, options.bias_field, -1.0 + 2.0 * ix / kCells, -1.0 + 2.0 * iy / kCells,
                     g.z);
    });
  }
  return g;
}

// ---------------------------------------------------------------------------------------------
// 5. Tissue fractions and rendering

using Fractions = TissueValues;

// Fraction of the right + left ventricle at brain-centred point (u, v), in units of the widest
// slice (the ventricles shrink with the head).
double ventricle_fraction(const HeadModel& h, const SliceGeometry& g, double u, double v) {
  double f = 0.0;
  for (int side = 0; side < 2; ++side) {
    if (g.ventricle[side] <= 0.0) continue;
    // Mirror the left side onto the right one.
    const double du = (side == 0 ? u : -u) - h.ventricle_x, dv = v - h.ventricle_y;
    if (std::abs(du) > 0.3 || std::abs(dv) > 0.4) continue;  // far away: skip the arithmetic
    const double size = g.ventricle[side] * (side == 0 ? 1.0 : h.ventricle_asymmetry);
    // Tilted, and bent like a banana so that the frontal and occipital horns point laterally.
    double lu = g.ventricle_cos * du + g.ventricle_sin * dv;
    const double lv = -g.ventricle_sin * du + g.ventricle_cos * dv;
    lu -= h.ventricle_bend * lv * lv / std::max(size, 0.3);
    const EllipsePoint e =
        ellipse_point(lu, lv, h.ventricle_width * size + 1e-6, h.ventricle_length * size + 1e-6);
    f = std::max(f, inside(distance_to(e, 1.0) * g.scale * g.px));
  }
  return f;
}

double deep_grey_fraction(const HeadModel& h, const SliceGeometry& g, double u, double v) {
  if (g.deep_grey <= 0.0) return 0.0;
  const double a = h.deep_grey_size * g.deep_grey, b = 1.4 * a;
  const double du = std::abs(u) - h.deep_grey_x, dv = v - h.deep_grey_y;
  if (std::abs(du) > 2.0 * a || std::abs(dv) > 2.0 * b) return 0.0;  // far away
  return inside(distance_to(ellipse_point(du, dv, a, b), 1.0) * g.scale * g.px);
}

// Fraction of the midline (interhemispheric) fissure: a thin CSF sheet from the front and the
// back of the brain, interrupted in the middle where the hemispheres are joined.
double fissure_fraction(const SliceGeometry& g, double u, double brain_depth) {
  const double width = 0.6 / g.px + 0.004;
  const double across = inside((std::abs(u) - width) * g.px);
  // Fades out (over a few pixels) at a depth of about a third of the brain's half length.
  const double along = inside((brain_depth - 0.35 * g.semi_y) * g.px * 0.3);
  return across * along;
}

struct TumourFractions {
  double lesion = 0, core = 0, oedema_reach = 0;
};

TumourFractions tumour_fractions(const TumourModel& t, const SliceGeometry& g, double u, double v) {
  TumourFractions f;
  if (!g.tumour) return f;
  const double du = u - g.tumour_x, dv = v - g.tumour_y;
  if (du * du + dv * dv > g.tumour_extent * g.tumour_extent) return f;
  const double lu = g.tumour_cos * du + g.tumour_sin * dv;
  const double lv = -g.tumour_sin * du + g.tumour_cos * dv;
  const EllipsePoint e = ellipse_point(lu, lv, g.tumour_a, g.tumour_b);
  const double r = g.lesion.radius(e.cos_t, e.sin_t);
  f.lesion = inside(distance_to(e, r) * g.px);
  f.core = inside(distance_to(e, r * t.core_fraction * g.core.radius(e.cos_t, e.sin_t)) * g.px);
  f.oedema_reach =
      inside(distance_to(e, r * (1.0 + t.oedema_reach) * g.oedema.radius(e.cos_t, e.sin_t)) * g.px);
  return f;
}

// Tissue fractions inside the brain, relative to the brain's share of the pixel.
struct BrainFractions {
  double grey = 0, white = 0, csf = 0, oedema = 0, core = 0, rim = 0;
};

// (u, v): head coordinates; depth: below the brain surface.
BrainFractions brain_fractions(const PatientModel& p, const SliceGeometry& g, double x, double y,
                               double u, double v, double depth) {
  const HeadModel& h = p.head;
  // Sulci: CSF clefts between the gyri, running roughly radially inwards from the brain
  // surface: the lines where the phase (number of sulci) * angle, bent by a smooth random field
  // by up to about one sulcus spacing, is a multiple of 2 pi. Their depth varies.
  const double sulcus_depth = h.sulcus_depth * (1.0 + 0.4 * g.gyri.at(-y, x));
  double across = 1.0;  // distance to the nearest sulcus' plane (only needed near the surface)
  if (depth < 2.0 * h.sulcus_depth) {
    const double angle = std::atan2(v / g.semi_y, u / g.semi_x);
    const double phase = h.sulci * angle + 7.0 * g.sulci.at(x, y);
    const double wrapped = phase - 2.0 * kPi * std::round(phase / (2.0 * kPi));
    across = std::abs(wrapped) * std::hypot(u, v) / h.sulci;  // the phase changes along arcs
  }
  const double cleft = inside((across - 0.5 / g.px) * g.px) * inside((depth - sulcus_depth) * g.px);
  // Grey matter is the cortical ribbon: whatever lies within the cortex thickness of the CSF,
  // at the brain surface or in a sulcus, so that the ribbon folds around each sulcus.
  const double to_csf = std::min(depth, std::hypot(across, std::max(0.0, depth - sulcus_depth)));
  const double cortex = h.cortex * (1.0 + 0.3 * g.gyri.at(x, y));
  const double white = inside((cortex - to_csf) * g.px);

  BrainFractions b;
  b.grey = 1.0 - white;
  b.white = white;
  // Deep grey nuclei take white matter; ventricles, fissure and sulci take both.
  const double su = u / g.scale, sv = v / g.scale;  // ventricles and nuclei shrink with the head
  const double nuclei = deep_grey_fraction(h, g, su, sv);
  b.grey += nuclei * b.white;
  b.white *= 1.0 - nuclei;
  b.csf = std::max({ventricle_fraction(h, g, su, sv), fissure_fraction(g, u, depth), cleft});
  b.grey *= 1.0 - b.csf;
  b.white *= 1.0 - b.csf;

  // The tumour replaces everything it covers; oedema soaks the parenchyma but not the CSF.
  const TumourFractions t = tumour_fractions(p.tumour, g, u, v);
  b.oedema = (1.0 - t.lesion) * t.oedema_reach * (b.grey + b.white);
  const double healthy = (1.0 - t.lesion) * (1.0 - t.oedema_reach);
  b.grey *= healthy;
  b.white *= healthy;
  b.csf *= 1.0 - t.lesion;
  b.core = t.lesion * t.core;
  b.rim = t.lesion * (1.0 - t.core);
  return b;
}

// Fractions of every tissue in the pixel at (x, y); they sum to 1.
Fractions tissue_fractions(const PatientModel& p, const SliceGeometry& g, double x, double y) {
  const HeadModel& h = p.head;
  // Head coordinates: centred and untilted.
  const double cu = x - h.cx, cv = y - h.cy;
  const double u = g.cos_a * cu + g.sin_a * cv, v = -g.sin_a * cu + g.cos_a * cv;

  // Depth below the (irregular) head surface; the outer layers are bands of depth.
  const EllipsePoint e = ellipse_point(u, v, g.semi_x, g.semi_y);
  const double depth = -distance_to(e, g.head_outline.radius(e.cos_t, e.sin_t));
  const double skull_top = h.scalp, csf_top = skull_top + h.skull, brain_top = csf_top + h.csf;
  Fractions f{};
  const double head = inside(-depth * g.px);
  f[kBackground] = 1.0 - head;
  if (head <= 0.0) return f;  // air: nothing else to compute
  const double below_scalp = inside((skull_top - depth) * g.px);
  const double below_skull = inside((csf_top - depth) * g.px);
  const double brain = inside((brain_top - depth) * g.px);
  f[kScalp] = head - below_scalp;
  f[kSkull] = below_scalp - below_skull;
  f[kCsf] = below_skull - brain;
  if (brain <= 0.0) return f;

  const BrainFractions b = brain_fractions(p, g, x, y, u, v, depth - brain_top);
  f[kCsf] += brain * b.csf;
  f[kGrey] = brain * b.grey;
  f[kWhite] = brain * b.white;
  f[kOedema] = brain * b.oedema;
  f[kCore] = brain * b.core;
  f[kRim] = brain * b.rim;
  return f;
}

// Noise-free intensity: the tissue intensities weighted by their fractions in the pixel.
double tissue_signal(const TissueValues& v, const Fractions& f, double texture,
                     double tumour_texture) {
  const double healthy = f[kScalp] * v[kScalp] + f[kSkull] * v[kSkull] + f[kCsf] * v[kCsf] +
                         (f[kGrey] * v[kGrey] + f[kWhite] * v[kWhite]) * texture;
  const double lesion = f[kOedema] * v[kOedema] + f[kCore] * v[kCore] + f[kRim] * v[kRim];
  return healthy + lesion * tumour_texture;
}

// Rician noise: the magnitude of the (real) signal plus complex Gaussian noise, as a magnitude
// image of a real scanner; sigma scales with the channel's white-matter intensity.
float rician(double signal, const ChannelModel& c, const PhantomOptions& options, Rng& rng) {
  const auto sigma = static_cast<float>(options.noise * c.intensity[kWhite] * c.gain);
  float re = 0.0f, im = 0.0f;
  rng.normal_pair(re, im);
  const float real = static_cast<float>(signal) + sigma * re, imaginary = sigma * im;
  return std::sqrt(real * real + imaginary * imaginary);
}

void check_options(const PhantomOptions& o) {
  if (o.size < 16) throw std::invalid_argument("phantom: size must be at least 16");
  if (o.channels < 1) throw std::invalid_argument("phantom: channels must be at least 1");
  if (o.slices_per_patient < 1)
    throw std::invalid_argument("phantom: slices_per_patient must be at least 1");
  if (!(o.tumour_probability >= 0.0 && o.tumour_probability <= 1.0))
    throw std::invalid_argument("phantom: tumour_probability must lie in [0, 1]");
  if (!(o.noise >= 0.0 && o.noise <= 1.0))
    throw std::invalid_argument("phantom: noise must lie in [0, 1]");
  if (!(o.bias_field >= 0.0 && o.bias_field <= 1.0))
    throw std::invalid_argument("phantom: bias_field must lie in [0, 1]");
}

}  // namespace

PhantomSlice make_phantom_slice(const PhantomOptions& options, uint64_t seed, uint64_t patient,
                                int index) {
  check_options(options);
  const int n = options.size, channels = options.channels;
  const int slice = ((index % options.slices_per_patient) + options.slices_per_patient) %
                    options.slices_per_patient;
  const PatientModel model = draw_patient(options, seed, patient);
  const SliceGeometry g = slice_geometry(model, options, slice);
  // Noise differs for every index, also for indices that wrap onto the same axial position.
  Rng noise(
      stream_key(seed, Stream::slice, patient, static_cast<uint64_t>(static_cast<int64_t>(index))));

  PhantomSlice out;
  out.size = n;
  out.channels = channels;
  out.patient = patient;
  const size_t plane = static_cast<size_t>(n) * n;
  out.image.assign(plane * channels, 0.0f);
  out.mask.assign(plane, 0.0f);
  out.tissue.assign(plane, 0);

  for (int i = 0; i < n; ++i) {
    const double y = (i + 0.5) / g.px - 1.0;
    for (int j = 0; j < n; ++j) {
      const double x = (j + 0.5) / g.px - 1.0;
      const size_t pixel = static_cast<size_t>(i) * n + j;
      const Fractions f = tissue_fractions(model, g, x, y);

      out.tissue[pixel] = static_cast<uint8_t>(std::max_element(f.begin(), f.end()) - f.begin());
      out.mask[pixel] = f[kCore] + f[kRim] >= 0.5 ? 1.0f : 0.0f;

      if (f[kBackground] >= 1.0) {
        // Air: no signal, only noise.
        for (int c = 0; c < channels; ++c)
          out.image[c * plane + pixel] = rician(0.0, model.channels[c], options, noise);
        continue;
      }
      // Texture: faint in healthy brain, stronger (heterogeneous enhancement) in the tumour.
      const double texture =
          f[kGrey] + f[kWhite] > 0.0 ? 1.0 + model.texture * g.texture.at(x, y) : 1.0;
      const double lesion = f[kOedema] + f[kCore] + f[kRim];
      const double tumour_texture =
          lesion > 0.0 ? 1.0 + model.heterogeneity * g.heterogeneity.at(x, y) : 1.0;
      for (int c = 0; c < channels; ++c) {
        const ChannelModel& ch = model.channels[c];
        const double signal =
            tissue_signal(ch.intensity, f, texture, tumour_texture) * ch.gain * g.bias[c].at(x, y);
        out.image[c * plane + pixel] = rician(signal, ch, options, noise);
      }
    }
  }
  return out;
}

PhantomBatch make_phantom_batch(const PhantomOptions& options, uint64_t seed, int count) {
  PhantomBatch batch;
  for (int i = 0; i < count; ++i) {
    const PhantomSlice s = make_phantom_slice(options, seed, uint64_t(i), 16);
    batch.image.insert(batch.image.end(), s.image.begin(), s.image.end());
    batch.mask.insert(batch.mask.end(), s.mask.begin(), s.mask.end());
  }
  return batch;
}

}  // namespace unet
