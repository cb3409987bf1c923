package loadtest

import (
	"fmt"
	"syscall"
)

func mapAnon(size int) ([]byte, error) {
	if size == 0 {
		return nil, nil
	}
	mem, err := syscall.Mmap(-1, 0, size, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_ANON|syscall.MAP_PRIVATE)
	if err != nil {
		return nil, fmt.Errorf("map memory for %d presigned bytes: %w", size, err)
	}
	return mem, nil
}

func unmap(mem []byte) { _ = syscall.Munmap(mem) }

// dontNeed gives the pages back; reading them later would see zeros.
func dontNeed(mem []byte) { _ = syscall.Madvise(mem, syscall.MADV_DONTNEED) }

func pageSize() int { return syscall.Getpagesize() }
