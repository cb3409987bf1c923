package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/amtsbote/amtsbote/mailbox"
)

// runMailbox: `amtsbote mailbox hash` reads a password from standard input (one line,
// so it never shows up in the process list or the shell history) and prints the
// bcrypt hash for mailbox.users[].password_hash.
func runMailbox(_ context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) != 1 || args[0] != "hash" {
		fmt.Fprintln(stderr, "usage: amtsbote mailbox hash < password-file")
		if n := len(args); n > 0 && isHelp(args[n-1]) {
			return 0 // `mailbox -h` and `mailbox hash -h` ask for this usage
		}
		return 2
	}
	line, err := bufio.NewReader(io.LimitReader(os.Stdin, 1024)).ReadString('\n')
	if err != nil && err != io.EOF {
		fmt.Fprintln(stderr, "amtsbote mailbox hash:", err)
		return 1
	}
	h, err := mailbox.HashPassword(strings.TrimRight(line, "\r\n"))
	if err != nil {
		fmt.Fprintln(stderr, "amtsbote mailbox hash:", err)
		return 1
	}
	fmt.Fprintln(stdout, h)
	return 0
}
