// CRC32C: hardware path with the SSE4.2 crc32 instruction (three interleaved streams from 192 bytes,
// combined with a carry-less multiply), 512-bit carry-less folding from 256 bytes where the CPU has
// VPCLMULQDQ and AVX-512, portable fallback.
#include "keel_crc32c.h"
#include <string.h>

#define POLY 0x82F63B78u  // Castagnoli, reflected

static uint32_t table[8][256];
static int table_ready = 0;

static void build_table(void) {
    for (uint32_t n = 0; n < 256; n++) {
        uint32_t crc = n;
        for (int k = 0; k < 8; k++) crc = (crc & 1) ? (crc >> 1) ^ POLY : crc >> 1;
        table[0][n] = crc;
    }
    for (uint32_t n = 0; n < 256; n++) {
        uint32_t crc = table[0][n];
        for (int k = 1; k < 8; k++) {
            crc = table[0][crc & 0xFF] ^ (crc >> 8);
            table[k][n] = crc;
        }
    }
    __atomic_store_n(&table_ready, 1, __ATOMIC_RELEASE);
}

uint32_t keel_crc32c_portable(uint32_t crc, const void *bytes, size_t length) {
    if (!__atomic_load_n(&table_ready, __ATOMIC_ACQUIRE)) build_table();  // idempotent, so a race is harmless
    const uint8_t *p = bytes;
    crc = ~crc;
    while (length && ((uintptr_t)p & 7)) { crc = table[0][(crc ^ *p++) & 0xFF] ^ (crc >> 8); length--; }
    while (length >= 8) {
        uint64_t word;
        memcpy(&word, p, 8);
        word ^= crc;
        crc = table[7][word & 0xFF] ^ table[6][(word >> 8) & 0xFF] ^ table[5][(word >> 16) & 0xFF] ^
              table[4][(word >> 24) & 0xFF] ^ table[3][(word >> 32) & 0xFF] ^ table[2][(word >> 40) & 0xFF] ^
              table[1][(word >> 48) & 0xFF] ^ table[0][word >> 56];
        p += 8;
        length -= 8;
    }
    while (length--) crc = table[0][(crc ^ *p++) & 0xFF] ^ (crc >> 8);
    return ~crc;
}

#if defined(__x86_64__)
#include <cpuid.h>
#include <immintrin.h>

// Three interleaved streams: the crc32 instruction has a 3-cycle latency and 1-cycle throughput, so
// one stream runs at a third of the instruction's speed. An input is cut into three equal blocks of
// 8n bytes, each stream's CRC is computed independently, and the three are combined:
//   crc(A||B||C) = crc(A)·x^(2·64n) ⊕ crc(B)·x^(64n) ⊕ crc(C)   (raw, uninverted CRC registers)
// The multiplications by x^m mod P are a carry-less multiply by the constant x^(m-33) mod P followed
// by one crc32 of the 64-bit product (which multiplies by x^32 and reduces; the 33rd power comes
// from the product's bit order). Constants exist for every block of 8n bytes, n ≤ STREAM_WORDS_MAX,
// so inputs of a few hundred bytes (log frames) get the three streams too, not only long ones.
#define STREAM_WORDS_MAX 512   // blocks up to 4096 bytes
#define STREAM_WORDS_MIN 8     // below 3 × 64 bytes, one stream is as fast
static uint64_t shift_one[STREAM_WORDS_MAX + 1];  // x^(64n - 33) mod P, reflected
static uint64_t shift_two[STREAM_WORDS_MAX + 1];  // x^(128n - 33) mod P, reflected

// v · x^bits mod P in the reflected representation (bit i holds the coefficient of x^(31-i)).
static uint32_t multiply_by_x_power(uint32_t v, unsigned bits) {
    while (bits--) v = (v & 1) ? (v >> 1) ^ POLY : v >> 1;
    return v;
}

// Built once when the library loads (a few hundred microseconds), so no call ever races to build them.
__attribute__((constructor))
static void build_shift_constants(void) {
    uint32_t one = multiply_by_x_power(0x80000000u, 31);  // x^31 = x^(64·1 - 33)
    uint32_t two = multiply_by_x_power(0x80000000u, 95);  // x^95 = x^(128·1 - 33)
    for (int n = 1; n <= STREAM_WORDS_MAX; n++) {
        shift_one[n] = one;
        shift_two[n] = two;
        one = multiply_by_x_power(one, 64);
        two = multiply_by_x_power(two, 128);
    }
}

// Folding (CPUs with VPCLMULQDQ and AVX-512): the crc32 instruction retires 8 bytes per cycle at
// best; carry-less multiplies fold 64-byte blocks several times faster (1 KiB: 44 → 36 ns, 4 KiB:
// 153 → 82 ns here). A 128-bit lane A of the message, L its first (low) quadword and H its second,
// stands for L·x^64 + H; moving it `d` bits further along the message is
//   A·x^d = L·x^(d+64) + H·x^d ≡ clmul(L, x^(d+63) mod P) ⊕ clmul(H, x^(d-1) mod P)
// (the reflected product carries one extra factor x, hence 63 and -1), a 96-bit value that fits
// the lane again. Two 512-bit accumulators take 128 bytes per round (d = 1024); they are folded
// into one, its four lanes into one, and the crc32 instruction reduces the last 16 bytes.
static uint64_t fold_constants[5][2];  // d = 1024, 512, then per lane 384, 256, 128
static uint64_t lane_constants[8];     // lanes 0-2 by 384, 256, 128; lane 3 unchanged (zeros)
static int wide_fold_available = 0;

// x^e mod P, reflected, in the upper half of a quadword (bit j holds the coefficient of x^(63-j)).
static uint64_t fold_constant(unsigned e) { return (uint64_t)multiply_by_x_power(0x80000000u, e) << 32; }

__attribute__((constructor))
static void prepare_wide_fold(void) {
    unsigned distances[5] = {1024, 512, 384, 256, 128};
    for (int i = 0; i < 5; i++) {
        fold_constants[i][0] = fold_constant(distances[i] + 63);
        fold_constants[i][1] = fold_constant(distances[i] - 1);
    }
    for (int i = 0; i < 3; i++) {
        lane_constants[2 * i] = fold_constants[i + 2][0];
        lane_constants[2 * i + 1] = fold_constants[i + 2][1];
    }
    unsigned eax, ebx, ecx, edx;
    if (!__get_cpuid(1, &eax, &ebx, &ecx, &edx) || !(ecx & bit_SSE4_2) || !(ecx & bit_PCLMUL) || !(ecx & bit_OSXSAVE)) return;
    if (!__get_cpuid_count(7, 0, &eax, &ebx, &ecx, &edx)) return;
    if (!(ebx & bit_AVX512F) || !(ebx & bit_AVX512VL) || !(ecx & bit_VPCLMULQDQ)) return;
    unsigned xcr0_low, xcr0_high;
    __asm__("xgetbv" : "=a"(xcr0_low), "=d"(xcr0_high) : "c"(0));
    if ((xcr0_low & 0xE6) != 0xE6) return;  // the OS saves the SSE, AVX and AVX-512 registers
    wide_fold_available = 1;
}

__attribute__((target("avx512f,avx512vl,vpclmulqdq")))
static inline __m512i fold512(__m512i accumulator, __m512i constants, __m512i data) {
    return _mm512_ternarylogic_epi64(
        _mm512_clmulepi64_epi128(accumulator, constants, 0x00), _mm512_clmulepi64_epi128(accumulator, constants, 0x11), data, 0x96);
}

__attribute__((target("sse4.2,pclmul")))
static inline __m128i fold128(__m128i accumulator, __m128i constants, __m128i data) {
    return _mm_xor_si128(
        _mm_xor_si128(_mm_clmulepi64_si128(accumulator, constants, 0x00), _mm_clmulepi64_si128(accumulator, constants, 0x11)), data);
}

// Folds all but the last (length mod 16) bytes of at least 256 at *bytes into the raw register crc;
// advances *bytes and *length past them.
__attribute__((target("avx512f,avx512vl,vpclmulqdq,sse4.2,pclmul")))
static uint64_t fold_wide(uint64_t crc, const uint8_t **bytes, size_t *length) {
    const uint8_t *p = *bytes;
    size_t remaining = *length;
    // zext, not cast: a cast leaves the upper 448 bits undefined (garbage in unoptimised builds).
    __m512i a = _mm512_xor_si512(_mm512_loadu_si512(p), _mm512_zextsi128_si512(_mm_cvtsi32_si128((int)(uint32_t)crc)));
    __m512i b = _mm512_loadu_si512(p + 64);
    p += 128;
    remaining -= 128;
    __m512i by1024 = _mm512_broadcast_i32x4(_mm_loadu_si128((const __m128i *)fold_constants[0]));
    while (remaining >= 128) {
        a = fold512(a, by1024, _mm512_loadu_si512(p));
        b = fold512(b, by1024, _mm512_loadu_si512(p + 64));
        p += 128;
        remaining -= 128;
    }
    a = fold512(a, _mm512_broadcast_i32x4(_mm_loadu_si128((const __m128i *)fold_constants[1])), b);
    // Lanes 0-2 moved to lane 3's place (lane 3's zero constants contribute nothing; it is added as is).
    a = fold512(a, _mm512_loadu_si512(lane_constants), _mm512_maskz_mov_epi64(0xC0, a));
    __m256i half = _mm256_xor_si256(_mm512_castsi512_si256(a), _mm512_extracti64x4_epi64(a, 1));
    __m128i x = _mm_xor_si128(_mm256_castsi256_si128(half), _mm256_extracti128_si256(half, 1));
    __m128i by128 = _mm_loadu_si128((const __m128i *)fold_constants[4]);
    while (remaining >= 16) {
        x = fold128(x, by128, _mm_loadu_si128((const __m128i *)p));
        p += 16;
        remaining -= 16;
    }
    *bytes = p;
    *length = remaining;
    uint64_t result = __builtin_ia32_crc32di(0, (uint64_t)_mm_cvtsi128_si64(x));
    return __builtin_ia32_crc32di(result, (uint64_t)_mm_extract_epi64(x, 1));
}

__attribute__((target("sse4.2")))
static inline uint64_t step64(uint64_t crc, const uint8_t *p) {
    uint64_t word;
    memcpy(&word, p, 8);
    return __builtin_ia32_crc32di(crc, word);
}

// Three streams over 3 × 8n bytes at p, continuing from the raw register crc.
__attribute__((target("sse4.2,pclmul")))
static inline uint64_t three_streams(uint64_t crc, const uint8_t *p, size_t words) {
    uint64_t a = crc, b = 0, c = 0;
    const uint8_t *pa = p, *pb = p + 8 * words, *pc = p + 16 * words;
    for (size_t i = 0; i < 8 * words; i += 8) {
        a = step64(a, pa + i);
        b = step64(b, pb + i);
        c = step64(c, pc + i);
    }
    __m128i product = _mm_xor_si128(
        _mm_clmulepi64_si128(_mm_cvtsi32_si128((int)(uint32_t)a), _mm_cvtsi64_si128((long long)shift_two[words]), 0),
        _mm_clmulepi64_si128(_mm_cvtsi32_si128((int)(uint32_t)b), _mm_cvtsi64_si128((long long)shift_one[words]), 0));
    return __builtin_ia32_crc32di(0, (uint64_t)_mm_cvtsi128_si64(product)) ^ c;
}

__attribute__((target("sse4.2,pclmul")))
uint32_t keel_crc32c_hardware(uint32_t crc32, const void *bytes, size_t length) {
    const uint8_t *p = bytes;
    uint64_t crc = ~crc32;
    if (length >= 256 && wide_fold_available) crc = fold_wide(crc, &p, &length);
    while (length && ((uintptr_t)p & 7)) { crc = __builtin_ia32_crc32qi((uint32_t)crc, *p++); length--; }
    while (length >= 3 * 8 * STREAM_WORDS_MAX) {
        crc = three_streams(crc, p, STREAM_WORDS_MAX);
        p += 3 * 8 * STREAM_WORDS_MAX;
        length -= 3 * 8 * STREAM_WORDS_MAX;
    }
    size_t words = length / 24;
    if (words >= STREAM_WORDS_MIN) {
        crc = three_streams(crc, p, words);
        p += 24 * words;
        length -= 24 * words;
    }
    while (length >= 8) { crc = step64(crc, p); p += 8; length -= 8; }
    while (length--) crc = __builtin_ia32_crc32qi((uint32_t)crc, *p++);
    return ~(uint32_t)crc;
}

int keel_crc32c_hardware_available(void) {
    unsigned eax, ebx, ecx, edx;
    if (!__get_cpuid(1, &eax, &ebx, &ecx, &edx)) return 0;
    return (ecx & bit_SSE4_2) != 0 && (ecx & bit_PCLMUL) != 0;
}
#else
uint32_t keel_crc32c_hardware(uint32_t crc, const void *bytes, size_t length) { return keel_crc32c_portable(crc, bytes, length); }
int keel_crc32c_hardware_available(void) { return 0; }
#endif

static int hardware_state = -1;  // -1 unknown, 0 no, 1 yes

uint32_t keel_crc32c(uint32_t crc, const void *bytes, size_t length) {
    int state = __atomic_load_n(&hardware_state, __ATOMIC_RELAXED);
    if (state < 0) {
        state = keel_crc32c_hardware_available();
        __atomic_store_n(&hardware_state, state, __ATOMIC_RELAXED);
    }
    return state ? keel_crc32c_hardware(crc, bytes, length) : keel_crc32c_portable(crc, bytes, length);
}
