// Compile-time configuration shared by every kernel header.
#pragma once

// The extension compiles the kernels once per x86-64 level (baseline, AVX2+FMA, AVX-512) and picks one at
// run time. Each copy lives in its own inline namespace so that the copies never merge at link time (an
// AVX-512 copy of an inline function must not replace the baseline one). Standalone C++ users get
// `generic` and see the plain `fastloss::` names either way.
#ifndef FASTLOSS_ISA_NAMESPACE
#define FASTLOSS_ISA_NAMESPACE generic
#endif

// True where fused multiply-add is an instruction; the polynomial kernels use it for accuracy and speed.
// Elsewhere a*b+c is kept separate (the project builds with -ffp-contract=off so that plain losses give
// the same bits on every x86-64 level).
#ifndef FASTLOSS_HAVE_FMA
#if defined(__FMA__)
#define FASTLOSS_HAVE_FMA 1
#else
#define FASTLOSS_HAVE_FMA 0
#endif
#endif

#if defined(__GNUC__) || defined(__clang__)
#define FASTLOSS_INLINE inline __attribute__((always_inline))
#else
#define FASTLOSS_INLINE inline
#endif
