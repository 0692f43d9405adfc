// CRC32C: hardware path with the SSE4.2 crc32 instruction (three interleaved streams for long
// inputs, since the instruction has a 3-cycle latency but 1-cycle throughput), portable fallback.
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

__attribute__((target("sse4.2")))
static inline uint64_t step64(uint64_t crc, const uint8_t *p) {
    uint64_t word;
    memcpy(&word, p, 8);
    return __builtin_ia32_crc32di(crc, word);
}

// Multiplies a CRC by x^(8*len) mod P, to shift a stream's CRC past the bytes of the streams after it.
static uint32_t shift_crc(uint32_t crc, size_t len) {
    // Square-and-multiply over GF(2) with the operator matrix for one zero byte.
    uint32_t op[32], sq[32];
    op[0] = POLY;
    for (int i = 1; i < 32; i++) op[i] = 1u << (i - 1);
    // op now advances by one bit; square three times for one byte.
    for (int round = 0; round < 3; round++) {
        for (int i = 0; i < 32; i++) {
            uint32_t v = op[i], r = 0;
            for (int b = 0; v; b++, v >>= 1) if (v & 1) r ^= op[b];
            sq[i] = r;
        }
        memcpy(op, sq, sizeof op);
    }
    while (len) {
        if (len & 1) {
            uint32_t v = crc, r = 0;
            for (int b = 0; v; b++, v >>= 1) if (v & 1) r ^= op[b];
            crc = r;
        }
        len >>= 1;
        if (!len) break;
        for (int i = 0; i < 32; i++) {
            uint32_t v = op[i], r = 0;
            for (int b = 0; v; b++, v >>= 1) if (v & 1) r ^= op[b];
            sq[i] = r;
        }
        memcpy(op, sq, sizeof op);
    }
    return crc;
}

#define STREAM_BLOCK 4096
static uint32_t shift_block_table[4][256];  // multiply-by-x^(8*STREAM_BLOCK) split by byte
static uint32_t shift_block2_table[4][256]; // multiply-by-x^(8*2*STREAM_BLOCK)
static int shift_ready = 0;

static void build_shift_tables(void) {
    for (int byte = 0; byte < 4; byte++) {
        for (uint32_t n = 0; n < 256; n++) {
            shift_block_table[byte][n] = shift_crc(n << (8 * byte), STREAM_BLOCK);
            shift_block2_table[byte][n] = shift_crc(n << (8 * byte), 2 * STREAM_BLOCK);
        }
    }
    __atomic_store_n(&shift_ready, 1, __ATOMIC_RELEASE);
}

static inline uint32_t apply_shift(uint32_t t[4][256], uint32_t crc) {
    return t[0][crc & 0xFF] ^ t[1][(crc >> 8) & 0xFF] ^ t[2][(crc >> 16) & 0xFF] ^ t[3][crc >> 24];
}

__attribute__((target("sse4.2")))
uint32_t keel_crc32c_hardware(uint32_t crc32, const void *bytes, size_t length) {
    const uint8_t *p = bytes;
    uint64_t crc = ~crc32;
    while (length && ((uintptr_t)p & 7)) { crc = __builtin_ia32_crc32qi((uint32_t)crc, *p++); length--; }
    if (length >= 3 * STREAM_BLOCK) {
        if (!__atomic_load_n(&shift_ready, __ATOMIC_ACQUIRE)) build_shift_tables();
        while (length >= 3 * STREAM_BLOCK) {
            uint64_t a = crc, b = 0, c = 0;
            const uint8_t *pa = p, *pb = p + STREAM_BLOCK, *pc = p + 2 * STREAM_BLOCK;
            for (size_t i = 0; i < STREAM_BLOCK; i += 8) {
                a = step64(a, pa + i);
                b = step64(b, pb + i);
                c = step64(c, pc + i);
            }
            // crc(A||B||C) = shift(a, 2 blocks) ^ shift(b, 1 block) ^ c, in the raw (uninverted) domain.
            crc = apply_shift(shift_block2_table, (uint32_t)a) ^ apply_shift(shift_block_table, (uint32_t)b) ^ (uint32_t)c;
            p += 3 * STREAM_BLOCK;
            length -= 3 * STREAM_BLOCK;
        }
    }
    while (length >= 8) { crc = step64(crc, p); p += 8; length -= 8; }
    while (length--) crc = __builtin_ia32_crc32qi((uint32_t)crc, *p++);
    return ~(uint32_t)crc;
}

int keel_crc32c_hardware_available(void) {
    unsigned eax, ebx, ecx, edx;
    if (!__get_cpuid(1, &eax, &ebx, &ecx, &edx)) return 0;
    return (ecx & bit_SSE4_2) != 0;
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
