package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"golang.org/x/crypto/bcrypt"
)

// htpasswdCost is the bcrypt cost of generated entries.
const htpasswdCost = 10

// htpasswdCommand implements "atoll htpasswd [-stdin] USER [PASSWORD]": it
// prints an htpasswd line, USER:<bcrypt hash>, for auth.htpasswd.path, as
// "htpasswd -Bbn" would (a scratch image has no htpasswd). With -stdin the
// password is the first line of standard input, so it stays out of the
// process list and shell history.
func htpasswdCommand(args []string, stdout, stderr io.Writer) error {
	return htpasswdFrom(os.Stdin, args, stdout, stderr)
}

func htpasswdFrom(stdin io.Reader, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("htpasswd", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fromStdin := fs.Bool("stdin", false, "read the password from the first line of standard input")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: atoll htpasswd USER PASSWORD\n       atoll htpasswd -stdin USER < password-file")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	var user, password string
	switch {
	case *fromStdin && fs.NArg() == 1:
		user = fs.Arg(0)
		line, err := bufio.NewReader(stdin).ReadString('\n')
		if err != nil && !errors.Is(err, io.EOF) {
			return fmt.Errorf("htpasswd: reading the password: %w", err)
		}
		password = strings.TrimRight(line, "\r\n")
	case !*fromStdin && fs.NArg() == 2:
		user, password = fs.Arg(0), fs.Arg(1)
	default:
		fs.Usage()
		return errors.New("htpasswd: wrong number of arguments")
	}
	if user == "" || strings.ContainsAny(user, ":\r\n") {
		return fmt.Errorf("htpasswd: user %q: must be non-empty, without ':' or line breaks", user)
	}
	if password == "" {
		return errors.New("htpasswd: empty password")
	}
	hash, err := bcrypt.GenerateFromPassword([]byte(password), htpasswdCost)
	if err != nil {
		return fmt.Errorf("htpasswd: %w", err) // longer than bcrypt's 72 bytes
	}
	_, err = fmt.Fprintf(stdout, "%s:%s\n", user, hash)
	return err
}

// apacheHtpasswd is Apache's htpasswd as the registry:2 guides run it,
// htpasswd -Bbn USER PASSWORD (bcrypt, password on the command line, print
// the line), and -Bn USER with the password on standard input. Other
// algorithms and updating a file are refused: registry:2 reads only bcrypt.
func apacheHtpasswd(stdin io.Reader, args []string, stdout, stderr io.Writer) error {
	var bcryptOn, batch, print bool
	var rest []string
	for i, a := range args {
		if !strings.HasPrefix(a, "-") || a == "-" {
			rest = args[i:]
			break
		}
		for _, c := range a[1:] {
			switch c {
			case 'B':
				bcryptOn = true
			case 'b':
				batch = true
			case 'n':
				print = true
			case 'C', 'c', 'm', 'd', 's', 'p', '2', '5', 'D', 'v', 'i':
				return fmt.Errorf("option -%c: this htpasswd (atoll) only prints bcrypt lines: htpasswd -Bbn USER PASSWORD", c)
			default:
				return fmt.Errorf("unknown option -%c: htpasswd -Bbn USER PASSWORD", c)
			}
		}
	}
	if !bcryptOn || !print {
		return errors.New("only bcrypt lines on standard output are supported: htpasswd -Bbn USER PASSWORD")
	}
	if batch {
		return htpasswdFrom(stdin, rest, stdout, stderr)
	}
	return htpasswdFrom(stdin, append([]string{"-stdin"}, rest...), stdout, stderr)
}
