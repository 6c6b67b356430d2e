package image

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"k8s.io/klog/v2"

	"github.com/crisp-runtime/crisp/errdefs"
	"github.com/crisp-runtime/crisp/internal/atomicfile"
)

// lease keeps an image's layers on disk for an owner (a container whose
// overlay mount uses them) even after the image is removed. It is stored as
// leases/<owner>.
type lease struct {
	Image  string   `json:"image"`
	Layers []string `json:"layers"` // diffIDs
	// Mounted leases (image volumes) keep the image itself: Remove refuses
	// to take it away from under the mount, as CRI-O does.
	Mounted bool `json:"mounted,omitempty"`
}

// Owners become file names.
var ownerRE = charRun{first: isAlnum, rest: isOwnerChar, min: 1, max: 255} // ^[A-Za-z0-9][A-Za-z0-9_.-]{0,254}$

// Lease records that owner uses the layers of the image named by ref (ID or
// any reference Get accepts). A second Lease by the same owner replaces the
// first. The layers survive Remove of the image until Unlease.
func (s *Store) Lease(owner, ref string) error {
	_, err := s.lease(owner, ref, false, true)
	return err
}

// LeaseDeferred is Lease without waiting for the lease to be durable: sync
// makes it so (an fsync of the file and of its directory), and the caller
// runs it alongside other work and waits for it before anything depends on
// the lease surviving a crash of the node. Readers of the store see the
// lease at once.
func (s *Store) LeaseDeferred(owner, ref string) (sync func() error, err error) {
	return s.lease(owner, ref, false, false)
}

// LeaseMounted is Lease for an owner that mounts the image as it is (an
// image volume): until Unlease, Remove of the whole image fails with
// ErrFailedPrecondition naming the owner.
func (s *Store) LeaseMounted(owner, ref string) error {
	_, err := s.lease(owner, ref, true, true)
	return err
}

// lease records the lease, durably or, if !durable, leaving that to the
// returned sync.
func (s *Store) lease(owner, ref string, mounted, durable bool) (sync func() error, err error) {
	if !ownerRE.MatchString(owner) {
		return nil, errdefs.InvalidArgument("invalid lease owner %q", owner)
	}
	var trash []string
	defer func() { s.emptyTrash(trash) }()
	s.metaMu.Lock()
	defer s.metaMu.Unlock()

	s.mu.RLock()
	id, _, err := s.lookupLocked(ref)
	l := lease{Mounted: mounted}
	var replaced bool
	if err == nil {
		l.Image = id
		for _, lr := range s.images[id].meta.Layers {
			l.Layers = append(l.Layers, lr.DiffID)
		}
		_, replaced = s.leases[owner]
	}
	s.mu.RUnlock()
	if err != nil {
		return nil, fmt.Errorf("lease for %s: %w", owner, err)
	}
	data, err := json.Marshal(l)
	if err != nil {
		return nil, err
	}
	path := filepath.Join(s.leaseDir(), owner)
	write := atomicfile.WriteFile
	if !durable {
		write = atomicfile.Replace
	}
	if err := write(path, data, 0o600); err != nil {
		return nil, err
	}
	s.mu.Lock()
	s.leases[owner] = l
	s.mu.Unlock()
	if replaced {
		trash = s.gcLocked()
	}
	if durable {
		return func() error { return nil }, nil
	}
	return func() error { return atomicfile.Sync(path) }, nil
}

// Unlease drops owner's lease and collects the layers nothing else uses.
// Unknown owners are not an error, so callers can retry cleanup freely.
func (s *Store) Unlease(owner string) error {
	if !ownerRE.MatchString(owner) {
		return errdefs.InvalidArgument("invalid lease owner %q", owner)
	}
	var trash []string
	defer func() { s.emptyTrash(trash) }()
	s.metaMu.Lock()
	defer s.metaMu.Unlock()

	s.mu.RLock()
	_, ok := s.leases[owner]
	s.mu.RUnlock()
	if !ok {
		return nil
	}
	if err := removeDurably(filepath.Join(s.leaseDir(), owner)); err != nil {
		return fmt.Errorf("unlease %s: %w", owner, err)
	}
	s.mu.Lock()
	delete(s.leases, owner)
	s.mu.Unlock()
	trash = s.gcLocked()
	return nil
}

// mountedByLocked names the owners whose mounted leases hold image id.
// Caller holds mu.
func (s *Store) mountedByLocked(id string) []string {
	var owners []string
	for owner, l := range s.leases {
		if l.Mounted && l.Image == id {
			owners = append(owners, owner)
		}
	}
	slices.Sort(owners)
	return owners
}

func (s *Store) loadLeases() error {
	entries, err := os.ReadDir(s.leaseDir())
	if err != nil {
		return fmt.Errorf("image store: %w", err)
	}
	for _, e := range entries {
		p := filepath.Join(s.leaseDir(), e.Name())
		if isTempFile(e.Name()) {
			// A lease write a crash interrupted before its rename: the
			// lease it was to become was never in effect.
			if err := os.Remove(p); err != nil {
				klog.ErrorS(err, "Image store: removing an interrupted lease write", "path", p)
			}
			continue
		}
		var l lease
		err := errors.New("not a lease owner name")
		if ownerRE.MatchString(e.Name()) {
			err = readJSON(p, &l)
		}
		if err != nil {
			// Leases are written atomically, so this is outside damage
			// or a newer crisp's format. The owner may be a running
			// container whose overlay uses layers nobody else names:
			// keep every layer until a person repairs or removes it.
			klog.ErrorS(err, "Image store: unreadable lease quarantined; no layer is collected until it is repaired or removed", "path", p)
			s.quarantined = append(s.quarantined, fmt.Sprintf("%s: %v", p, err))
			continue
		}
		s.leases[e.Name()] = l
	}
	return nil
}

// isTempFile tells atomicfile's temporary files (".<name>.tmp<random>").
func isTempFile(name string) bool {
	return strings.HasPrefix(name, ".") && strings.Contains(name, ".tmp")
}

// Quarantined describes the lease files start-up could not read: while any
// is left, garbage collection keeps every layer (see referencedLocked).
func (s *Store) Quarantined() []string {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return slices.Clone(s.quarantined)
}
