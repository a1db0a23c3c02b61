// The synthetic MRI phantom: shapes, determinism, value ranges, the tumour-probability contract,
// the contrasts the anatomy model promises, Rician background noise, and that adjacent slices of
// one patient look more alike than slices of different patients.
#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>
#include <cstring>
#include <numbers>
#include <stdexcept>
#include <vector>

#include "train/phantom.h"

namespace {

using unet::make_phantom_slice;
using unet::PhantomOptions;
using unet::PhantomSlice;
using unet::PhantomTissue;

bool bitwise_equal(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

double mask_area(const PhantomSlice& s) {
  double area = 0.0;
  for (float m : s.mask) area += m;
  return area;
}

// Mean of channel `c` over the pixels whose dominant tissue is one of `tissues`; count gets
// their number.
double tissue_mean(const PhantomSlice& s, int c, std::initializer_list<PhantomTissue> tissues,
                   int* count = nullptr) {
  const size_t plane = static_cast<size_t>(s.size) * s.size;
  double sum = 0.0;
  int n = 0;
  for (size_t p = 0; p < plane; ++p)
    for (PhantomTissue t : tissues)
      if (s.tissue[p] == static_cast<uint8_t>(t)) {
        sum += s.image[c * plane + p];
        ++n;
      }
  if (count) *count = n;
  return n > 0 ? sum / n : 0.0;
}

// Mean of channel c over the mask (inside = true) or over healthy parenchyma (inside = false).
double region_mean(const PhantomSlice& s, int c, bool tumour) {
  const size_t plane = static_cast<size_t>(s.size) * s.size;
  double sum = 0.0;
  int n = 0;
  for (size_t p = 0; p < plane; ++p) {
    const bool parenchyma = s.tissue[p] == static_cast<uint8_t>(PhantomTissue::grey_matter) ||
                            s.tissue[p] == static_cast<uint8_t>(PhantomTissue::white_matter);
    if (tumour ? s.mask[p] > 0.5f : parenchyma && s.mask[p] < 0.5f) {
      sum += s.image[c * plane + p];
      ++n;
    }
  }
  return sum / std::max(n, 1);
}

// Binary brain map: every pixel whose dominant tissue lies inside the skull.
std::vector<float> brain_map(const PhantomSlice& s) {
  std::vector<float> b(s.tissue.size());
  for (size_t p = 0; p < b.size(); ++p)
    b[p] = s.tissue[p] >= static_cast<uint8_t>(PhantomTissue::csf) ? 1.0f : 0.0f;
  return b;
}

double dice(const std::vector<float>& a, const std::vector<float>& b) {
  double both = 0.0, total = 0.0;
  for (size_t p = 0; p < a.size(); ++p) {
    both += a[p] * b[p];
    total += a[p] + b[p];
  }
  return 2.0 * both / total;
}

double correlation(const float* a, const float* b, size_t n) {
  double ma = 0.0, mb = 0.0;
  for (size_t i = 0; i < n; ++i) {
    ma += a[i];
    mb += b[i];
  }
  ma /= static_cast<double>(n);
  mb /= static_cast<double>(n);
  double ab = 0.0, aa = 0.0, bb = 0.0;
  for (size_t i = 0; i < n; ++i) {
    ab += (a[i] - ma) * (b[i] - mb);
    aa += (a[i] - ma) * (a[i] - ma);
    bb += (b[i] - mb) * (b[i] - mb);
  }
  return ab / std::sqrt(aa * bb);
}

}  // namespace

TEST_CASE("phantom: shapes and bookkeeping", "[phantom]") {
  PhantomOptions o;
  o.size = 96;
  for (int channels : {1, 3, 5}) {
    o.channels = channels;
    const PhantomSlice s = make_phantom_slice(o, 1, 42, 3);
    CHECK(s.size == 96);
    CHECK(s.channels == channels);
    CHECK(s.patient == 42);
    CHECK(s.image.size() == static_cast<size_t>(channels) * 96 * 96);
    CHECK(s.mask.size() == 96u * 96u);
    CHECK(s.tissue.size() == 96u * 96u);
  }
}

TEST_CASE("phantom: deterministic in (seed, patient, index)", "[phantom]") {
  const PhantomOptions o;
  const PhantomSlice a = make_phantom_slice(o, 5, 3, 11);
  const PhantomSlice b = make_phantom_slice(o, 5, 3, 11);
  CHECK(bitwise_equal(a.image, b.image));
  CHECK(bitwise_equal(a.mask, b.mask));
  CHECK(a.tissue == b.tissue);

  CHECK_FALSE(bitwise_equal(a.image, make_phantom_slice(o, 6, 3, 11).image));
  CHECK_FALSE(bitwise_equal(a.image, make_phantom_slice(o, 5, 4, 11).image));
  CHECK_FALSE(bitwise_equal(a.image, make_phantom_slice(o, 5, 3, 12).image));
  // A different patient has a different head, not only different noise.
  CHECK(a.tissue != make_phantom_slice(o, 5, 4, 11).tissue);
  CHECK(a.tissue != make_phantom_slice(o, 6, 3, 11).tissue);
}

TEST_CASE("phantom: index wraps onto the patient's volume with fresh noise", "[phantom]") {
  PhantomOptions o;
  o.size = 64;
  o.slices_per_patient = 16;
  const PhantomSlice a = make_phantom_slice(o, 2, 9, 5);
  const PhantomSlice b = make_phantom_slice(o, 2, 9, 5 + 16);
  const PhantomSlice c = make_phantom_slice(o, 2, 9, 5 - 32);
  CHECK(a.tissue == b.tissue);
  CHECK(a.tissue == c.tissue);
  CHECK(bitwise_equal(a.mask, b.mask));
  CHECK_FALSE(bitwise_equal(a.image, b.image));
}

TEST_CASE("phantom: values finite and in range, mask binary, labels valid", "[phantom]") {
  PhantomOptions o;
  o.size = 128;
  o.channels = 4;
  for (uint64_t patient = 0; patient < 6; ++patient)
    for (int index : {0, 9, 16, 31}) {
      const PhantomSlice s = make_phantom_slice(o, 77, patient, index);
      float lo = 1e9f, hi = -1e9f;
      bool finite = true;
      for (float v : s.image) {
        finite = finite && std::isfinite(v);
        lo = std::min(lo, v);
        hi = std::max(hi, v);
      }
      CHECK(finite);
      CHECK(lo >= 0.0f);  // a magnitude image
      CHECK(hi <= 2.0f);  // "roughly in [0, 1.5]": contrasts <= 1.4, bias <= exp(0.2), + noise
      CHECK(hi >= 0.8f);  // there is a head in the picture
      bool binary = true, labels = true;
      for (float m : s.mask) binary = binary && (m == 0.0f || m == 1.0f);
      for (uint8_t t : s.tissue) labels = labels && t < unet::kPhantomTissues;
      CHECK(binary);
      CHECK(labels);
    }
}

TEST_CASE("phantom: tumour_probability 0 gives empty masks, 1 non-empty ones", "[phantom]") {
  PhantomOptions o;
  o.size = 96;
  for (double p : {0.0, 1.0}) {
    o.tumour_probability = p;
    for (uint64_t patient = 0; patient < 8; ++patient)
      for (int index = 0; index < o.slices_per_patient; index += 3) {
        const PhantomSlice s = make_phantom_slice(o, 123, patient, index);
        INFO("p " << p << " patient " << patient << " index " << index);
        if (p == 0.0) {
          CHECK(mask_area(s) == 0.0);
        } else {
          CHECK(mask_area(s) > 0.0);
        }
      }
  }
}

TEST_CASE("phantom: a tumour_probability fraction of each patient's slices has a tumour",
          "[phantom]") {
  PhantomOptions o;
  o.size = 64;
  o.tumour_probability = 0.4;
  o.slices_per_patient = 20;
  for (uint64_t patient = 0; patient < 4; ++patient) {
    int with_tumour = 0;
    int previous = -1, runs = 0;
    for (int index = 0; index < o.slices_per_patient; ++index) {
      const int present = mask_area(make_phantom_slice(o, 8, patient, index)) > 0.0 ? 1 : 0;
      with_tumour += present;
      if (present == 1 && previous != 1) ++runs;
      previous = present;
    }
    CHECK(with_tumour == 8);  // round(0.4 * 20)
    CHECK(runs == 1);         // one tumour, in consecutive slices
  }
}

TEST_CASE("phantom: the tumour stands out in some channel but not by one fixed value",
          "[phantom]") {
  PhantomOptions o;
  o.tumour_probability = 1.0;
  std::vector<double> core_t1;
  for (uint64_t patient = 0; patient < 10; ++patient) {
    const PhantomSlice s = make_phantom_slice(o, 99, patient, o.slices_per_patient / 2);
    REQUIRE(mask_area(s) > 0.0);
    double largest = 0.0;
    for (int c = 0; c < o.channels; ++c)
      largest = std::max(largest, std::abs(region_mean(s, c, true) - region_mean(s, c, false)));
    INFO("patient " << patient);
    CHECK(largest > 0.1);
    int n = 0;
    const double m = tissue_mean(s, 0, {PhantomTissue::necrotic_core}, &n);
    if (n > 20) core_t1.push_back(m);
  }
  // The core's T1 intensity is drawn per patient: it spreads over patients.
  REQUIRE(core_t1.size() >= 3);
  const auto [lo, hi] = std::minmax_element(core_t1.begin(), core_t1.end());
  CHECK(*hi - *lo > 0.05);
}

TEST_CASE("phantom: contrasts follow the table", "[phantom]") {
  PhantomOptions o;
  o.tumour_probability = 1.0;
  o.noise = 0.0;  // compare tissue levels without the Rician bias of dark regions
  int checked = 0;
  for (uint64_t patient = 0; patient < 12; ++patient) {
    const PhantomSlice s = make_phantom_slice(o, 31, patient, o.slices_per_patient / 2);
    int n_core = 0, n_rim = 0, n_oedema = 0;
    const double core_t1c = tissue_mean(s, 2, {PhantomTissue::necrotic_core}, &n_core);
    const double rim_t1c = tissue_mean(s, 2, {PhantomTissue::enhancing_rim}, &n_rim);
    const double oedema_flair = tissue_mean(s, 1, {PhantomTissue::oedema}, &n_oedema);
    INFO("patient " << patient);
    // The enhancing rim is bright post-contrast: brighter than the core there, and brighter
    // than itself before contrast.
    if (n_core > 20 && n_rim > 20) {
      CHECK(rim_t1c > core_t1c + 0.2);
      ++checked;
    }
    if (n_rim > 20) CHECK(rim_t1c > tissue_mean(s, 0, {PhantomTissue::enhancing_rim}) + 0.15);
    // Oedema is bright in FLAIR, darker than white matter in T1.
    if (n_oedema > 20) {
      CHECK(oedema_flair > tissue_mean(s, 1, {PhantomTissue::white_matter}) + 0.1);
      CHECK(tissue_mean(s, 0, {PhantomTissue::oedema}) <
            tissue_mean(s, 0, {PhantomTissue::white_matter}));
    }
    // Healthy anatomy: T1 white > grey > CSF; FLAIR suppresses CSF below grey matter.
    CHECK(tissue_mean(s, 0, {PhantomTissue::white_matter}) >
          tissue_mean(s, 0, {PhantomTissue::grey_matter}));
    CHECK(tissue_mean(s, 0, {PhantomTissue::grey_matter}) >
          tissue_mean(s, 0, {PhantomTissue::csf}));
    CHECK(tissue_mean(s, 1, {PhantomTissue::grey_matter}) >
          tissue_mean(s, 1, {PhantomTissue::csf}));
    CHECK(tissue_mean(s, 0, {PhantomTissue::skull}) < 0.3);
  }
  CHECK(checked >= 4);
}

TEST_CASE("phantom: oedema is not part of the mask", "[phantom]") {
  PhantomOptions o;
  o.tumour_probability = 1.0;
  int oedema = 0, oedema_in_mask = 0;
  for (uint64_t patient = 0; patient < 8; ++patient) {
    const PhantomSlice s = make_phantom_slice(o, 4, patient, 16);
    for (size_t p = 0; p < s.mask.size(); ++p)
      if (s.tissue[p] == static_cast<uint8_t>(PhantomTissue::oedema)) {
        ++oedema;
        oedema_in_mask += s.mask[p] > 0.5f ? 1 : 0;
      }
  }
  REQUIRE(oedema > 100);
  // Only partial-volume pixels at the lesion's edge may be both.
  CHECK(oedema_in_mask < oedema / 50);
}

TEST_CASE("phantom: background carries Rician (Rayleigh) noise of the requested level",
          "[phantom]") {
  PhantomOptions o;
  o.channels = 1;
  o.noise = 0.05;
  const PhantomSlice s = make_phantom_slice(o, 3, 1, 7);
  // A corner patch is air: its magnitude is Rayleigh with mean sigma * sqrt(pi / 2), and sigma is
  // noise * white-matter level * gain (white matter ~1 in T1, gain 0.92..1.05, jitter +-5%).
  double sum = 0.0;
  for (int i = 0; i < 24; ++i)
    for (int j = 0; j < 24; ++j) sum += s.image[i * s.size + j];
  const double mean = sum / (24 * 24);
  CHECK(mean > 0.05 * 0.85 * std::sqrt(std::numbers::pi / 2.0));
  CHECK(mean < 0.05 * 1.12 * std::sqrt(std::numbers::pi / 2.0));

  o.noise = 0.0;
  const PhantomSlice clean = make_phantom_slice(o, 3, 1, 7);
  CHECK(clean.image[0] == 0.0f);
  // Same anatomy with and without noise.
  CHECK(clean.tissue == s.tissue);
}

TEST_CASE("phantom: adjacent slices of a patient are alike, other patients are not", "[phantom]") {
  PhantomOptions o;
  o.size = 128;
  double same_dice = 0.0, other_dice = 0.0, same_corr = 0.0, other_corr = 0.0;
  const size_t plane = 128 * 128;
  int pairs = 0;
  for (uint64_t patient = 0; patient < 6; ++patient)
    for (int index : {4, 12, 20}) {
      const PhantomSlice a = make_phantom_slice(o, 17, patient, index);
      const PhantomSlice next = make_phantom_slice(o, 17, patient, index + 1);
      const PhantomSlice other = make_phantom_slice(o, 17, patient + 100, index);
      same_dice += dice(brain_map(a), brain_map(next));
      other_dice += dice(brain_map(a), brain_map(other));
      same_corr += correlation(a.image.data(), next.image.data(), plane);
      other_corr += correlation(a.image.data(), other.image.data(), plane);
      ++pairs;
    }
  same_dice /= pairs;
  other_dice /= pairs;
  same_corr /= pairs;
  other_corr /= pairs;
  INFO("dice " << same_dice << " vs " << other_dice << ", correlation " << same_corr << " vs "
               << other_corr);
  CHECK(same_dice > 0.97);
  CHECK(same_dice > other_dice + 0.02);
  CHECK(same_corr > other_corr + 0.05);
}

TEST_CASE("phantom: rejects invalid options", "[phantom]") {
  PhantomOptions o;
  o.size = 8;
  CHECK_THROWS_AS(make_phantom_slice(o, 0, 0, 0), std::invalid_argument);
  o = PhantomOptions{};
  o.channels = 0;
  CHECK_THROWS_AS(make_phantom_slice(o, 0, 0, 0), std::invalid_argument);
  o = PhantomOptions{};
  o.tumour_probability = 1.5;
  CHECK_THROWS_AS(make_phantom_slice(o, 0, 0, 0), std::invalid_argument);
  o = PhantomOptions{};
  o.noise = -0.1;
  CHECK_THROWS_AS(make_phantom_slice(o, 0, 0, 0), std::invalid_argument);
  o = PhantomOptions{};
  o.slices_per_patient = 0;
  CHECK_THROWS_AS(make_phantom_slice(o, 0, 0, 0), std::invalid_argument);
}
