package accounts

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"

	"github.com/tether-fabric/tether/contract"
	"github.com/tether-fabric/tether/internal/securefile"
)

// HubExport lists what ExportHub wrote.
type HubExport struct {
	Dir     string   `json:"dir"`
	Files   []string `json:"files"`
	Removed []string `json:"removed,omitempty"`
}

// hubFiles returns the store files a hub reads, with their modes: public
// JWTs and certificates, the hub's TLS key, the cloud user's creds (the
// hub sets up the CLOUD streams and answers edges as that user), the
// service router's creds (accounts/SVC/router.creds) and each
// edge's scoped leaf signing key (the enrollment registrar; it can mint
// leaf users of that edge and nothing wider). Never the operator's keys,
// account identity or signing keys, the system user, edges' creds or the
// CA key.
func (s *Store) hubFiles() (map[string]fs.FileMode, error) {
	files := map[string]fs.FileMode{
		"fabric.json":           publicMode,
		"operator/operator.jwt": publicMode,
		"pki/ca.pem":            publicMode,
		"pki/hub.pem":           publicMode,
		"pki/hub-key.pem":       secretMode,
		"users/cloud.creds":     secretMode,
	}
	accs, err := s.Accounts()
	if err != nil {
		return nil, err
	}
	for _, a := range accs {
		files[filepath.Join("accounts", a.Name, "account.jwt")] = publicMode
	}
	// The service router's user (the SVC account's only user).
	if _, err := os.Stat(s.ServiceCredsFile()); err == nil {
		files[filepath.Join("accounts", contract.ServiceAccountName, "router.creds")] = secretMode
	}
	edges, err := s.Edges()
	if err != nil {
		return nil, err
	}
	for _, e := range edges {
		files[filepath.Join("accounts", contract.EdgeAccountName(e), "leaf-signing.nk")] = secretMode
		for _, f := range []string{"leaf.jwt", "revoked"} {
			if _, err := os.Stat(s.path("edges", e, f)); err == nil {
				files[filepath.Join("edges", e, f)] = publicMode
			}
		}
	}
	return files, nil
}

// ExportHub writes into dir the part of the store a hub needs (see
// hubFiles), for hubs that should not hold the whole store (containers).
// Files are written in place, each atomically, so a directory already
// bind-mounted into running containers stays the same directory; accounts
// and edges no longer in the store are removed from it. Run it again after
// adding, rotating, revoking or removing edges.
func (s *Store) ExportHub(dir string) (*HubExport, error) {
	if abs, err := filepath.Abs(dir); err == nil {
		if own, err := filepath.Abs(s.dir); err == nil && (abs == own || filepath.Dir(abs) == own) {
			return nil, fmt.Errorf("export hub store %s: must be outside the store %s", dir, s.dir)
		}
	}
	files, err := s.hubFiles()
	if err != nil {
		return nil, fmt.Errorf("export hub store: %w", err)
	}
	out := &HubExport{Dir: dir}
	for _, d := range []string{"", "operator", "accounts", "users", "edges", "pki"} {
		if err := os.MkdirAll(filepath.Join(dir, d), dirMode); err != nil {
			return nil, fmt.Errorf("export hub store: %w", err)
		}
	}
	for rel, mode := range files {
		var data []byte
		if mode == secretMode {
			data, err = securefile.Read(s.path(rel))
		} else {
			data, err = os.ReadFile(s.path(rel))
		}
		if err != nil {
			return nil, fmt.Errorf("export hub store: %w", err)
		}
		if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, rel)), dirMode); err != nil {
			return nil, fmt.Errorf("export hub store: %w", err)
		}
		if err := securefile.Write(filepath.Join(dir, rel), data, mode); err != nil {
			return nil, fmt.Errorf("export hub store: %w", err)
		}
		out.Files = append(out.Files, rel)
	}
	sort.Strings(out.Files)
	// Every edge has its directory, even one waiting for enrollment with
	// nothing in it yet: the hub lists edges by directory.
	edges, err := s.Edges()
	if err != nil {
		return nil, fmt.Errorf("export hub store: %w", err)
	}
	keepDir := map[string]bool{}
	for _, e := range edges {
		keepDir[filepath.Join("edges", e)] = true
		keepDir[filepath.Join("accounts", contract.EdgeAccountName(e))] = true
		if err := os.MkdirAll(filepath.Join(dir, "edges", e), dirMode); err != nil {
			return nil, fmt.Errorf("export hub store: %w", err)
		}
	}
	for rel := range files {
		keepDir[filepath.Dir(rel)] = true
	}
	// Whatever the export holds beyond that list goes (removed edges,
	// files of an older layout).
	err = filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(dir, path)
		if _, keep := files[rel]; !keep {
			out.Removed = append(out.Removed, rel)
			return os.Remove(path)
		}
		return nil
	})
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return out, fmt.Errorf("export hub store: %w", err)
	}
	for _, parent := range []string{"accounts", "edges"} {
		entries, _ := os.ReadDir(filepath.Join(dir, parent))
		for _, e := range entries {
			if rel := filepath.Join(parent, e.Name()); e.IsDir() && !keepDir[rel] {
				_ = os.Remove(filepath.Join(dir, rel)) // emptied above
			}
		}
	}
	return out, nil
}
