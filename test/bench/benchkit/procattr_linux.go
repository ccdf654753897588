package benchkit

import "syscall"

// childProcAttr puts a child in its own process group, so a terminal ^C
// reaches only the harness (which then stops the child cleanly), and kills
// it if the harness dies without cleaning up.
func childProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
