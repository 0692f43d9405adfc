// CRC32C (Castagnoli), the checksum of every log frame, snapshot chunk and hard-state slot.
// Pure computation: no OS calls. `keel_crc32c` picks the SSE4.2 instruction when the CPU has it and
// the portable table otherwise; both variants are exported so tests can check them against each other.
#ifndef KEEL_CRC32C_H
#define KEEL_CRC32C_H
#include <stddef.h>
#include <stdint.h>

/// Continues a CRC32C over `length` bytes. Start with crc = 0; pass the previous result to continue.
uint32_t keel_crc32c(uint32_t crc, const void *bytes, size_t length);
/// The hardware (SSE4.2 crc32 instruction and PCLMULQDQ) variant; only call when keel_crc32c_hardware_available().
uint32_t keel_crc32c_hardware(uint32_t crc, const void *bytes, size_t length);
/// The portable table-driven variant (slicing by 8).
uint32_t keel_crc32c_portable(uint32_t crc, const void *bytes, size_t length);
/// 1 when the CPU has the SSE4.2 crc32 instruction and PCLMULQDQ.
int keel_crc32c_hardware_available(void);
#endif
