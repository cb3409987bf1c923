package main

import (
	"fmt"
	"os"
	"os/user"
	"strconv"
	"syscall"
)

// effectiveUID is the user this command runs as. A variable so that a test can
// stand for someone other than the folder's owner without being root.
var effectiveUID = os.Geteuid

// checkDataOwner refuses to write into a data folder that belongs to another user.
//
// Under systemd the gateway runs as its own user and its data folder belongs to it
// (StateDirectory=amtsbote, 0700), while the operator runs `store restore`, `store
// import` or `gc` from a root shell. Those wrote the store file (restore, import,
// a compaction) as root with mode 0600, and the next start of the service failed
// with "open …/amtsbote.db: permission denied", after a restore, that is when the
// gateway is needed most. A folder that does not exist yet is left to the caller:
// systemd hands a newly created state folder to the service user at its next start.
func checkDataOwner(dir, command string) error {
	fi, err := os.Stat(dir)
	if err != nil {
		return nil // not there (yet): whoever creates it owns it; other errors show up when it is used
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return nil
	}
	me := effectiveUID()
	if int(st.Uid) == me {
		return nil
	}
	owner := strconv.FormatUint(uint64(st.Uid), 10)
	if u, err := user.LookupId(owner); err == nil {
		owner = u.Username
	}
	return fmt.Errorf("the data folder %s belongs to user %s, and this command runs as uid %d: the files it writes there would not be readable by the gateway running as %s. Run it as that user, e.g. runuser -u %s -- amtsbote %s …",
		dir, owner, me, owner, owner, command)
}
