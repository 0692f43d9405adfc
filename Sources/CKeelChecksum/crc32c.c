// CRC32C: hardware path with the SSE4.2 crc32 instruction (three interleaved streams from 192 bytes,
// combined with a carry-less multiply), portable fallback.
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
