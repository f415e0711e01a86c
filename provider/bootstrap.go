package provider

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/oidcgate/oidcgate/provider/storage"
)

// Bootstrap declares clients and users applied at start, idempotently, the
// way Dex's static configuration is: a deployment can declare its clients.
type Bootstrap struct {
	Clients     []ClientSpec     `yaml:"clients"`
	Users       []UserSpec       `yaml:"users"`
	AdminTokens []AdminTokenSpec `yaml:"admin_tokens"`
}

// AdminTokenSpec declares an admin API bearer token (stored as its hash).
type AdminTokenSpec struct {
	Name      string `yaml:"name"`
	Token     string `yaml:"token"`
	TokenFile string `yaml:"token_file"`
}

// LoadBootstrap reads a bootstrap file strictly (unknown keys are errors).
// A confidential client must declare its secret (secret or secret_file).
func LoadBootstrap(path string) (*Bootstrap, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("bootstrap: %w", err)
	}
	var b Bootstrap
	dec := yaml.NewDecoder(bytes.NewReader(raw))
	dec.KnownFields(true)
	if err := dec.Decode(&b); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("bootstrap %s: %w", path, err)
	}
	var errs []error
	for i := range b.Clients {
		c := &b.Clients[i]
		if c.SecretFile != "" {
			s, err := os.ReadFile(c.SecretFile)
			if err != nil {
				errs = append(errs, fmt.Errorf("client %s: %w", c.ID, err))
				continue
			}
			c.Secret = strings.TrimRight(string(s), "\r\n")
		}
		if !c.Public && c.Secret == "" {
			errs = append(errs, fmt.Errorf("client %s: a confidential client needs secret or secret_file", c.ID))
		}
	}
	for _, u := range b.Users {
		if !ValidUsername(u.Username) || u.Password == "" {
			errs = append(errs, fmt.Errorf("user %q: needs a username and a password", u.Username))
		} else if err := ValidatePassword(u.Password); err != nil {
			errs = append(errs, fmt.Errorf("user %q: %v", u.Username, err))
		}
	}
	for i := range b.AdminTokens {
		a := &b.AdminTokens[i]
		if a.TokenFile != "" {
			s, err := os.ReadFile(a.TokenFile)
			if err != nil {
				errs = append(errs, fmt.Errorf("admin token %s: %w", a.Name, err))
				continue
			}
			a.Token = strings.TrimRight(string(s), "\r\n")
		}
		if _, err := AdminTokenFor(a.Name, a.Token, 0, time.Time{}); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("bootstrap %s: %w", path, errors.Join(errs...))
	}
	return &b, nil
}

// BootstrapStore is what applying a bootstrap needs.
type BootstrapStore interface {
	storage.Clients
	storage.Users
	storage.AdminTokens
}

// ApplyBootstrap makes the store hold what b declares (seal keeps
// client_secret_jwt secrets): clients are created
// or updated to match; users are created, or have their claims, disabled
// flag and (if it no longer matches) password updated. IDs of existing
// users never change.
func ApplyBootstrap(ctx context.Context, s BootstrapStore, seal Sealer, b *Bootstrap, cost Argon2Params, now time.Time) error {
	for _, spec := range b.Clients {
		c, generated, err := spec.Build(now)
		if err == nil {
			err = SealClientSecret(seal, c, cmpOr(spec.Secret, generated))
		}
		if err != nil {
			return fmt.Errorf("bootstrap client %s: %w", spec.ID, err)
		}
		old, err := s.GetClient(ctx, c.ID)
		switch {
		case errors.Is(err, storage.ErrNotFound):
			err = s.CreateClient(ctx, c)
		case err == nil:
			c.CreatedAt = old.CreatedAt
			err = s.UpdateClient(ctx, c)
		}
		if err != nil {
			return fmt.Errorf("bootstrap client %s: %w", spec.ID, err)
		}
	}
	if err := applyAdminTokens(ctx, s, b.AdminTokens, now); err != nil {
		return err
	}
	for _, spec := range b.Users {
		old, err := s.GetUserByUsername(ctx, spec.Username)
		switch {
		case errors.Is(err, storage.ErrNotFound):
			hash, err := HashPassword(spec.Password, cost)
			if err != nil {
				return err
			}
			err = s.CreateUser(ctx, &storage.User{ID: NewUserID(), Username: spec.Username, PasswordHash: hash,
				Claims: spec.Claims, Disabled: spec.Disabled, CreatedAt: now, UpdatedAt: now})
			if err != nil {
				return fmt.Errorf("bootstrap user %s: %w", spec.Username, err)
			}
		case err != nil:
			return fmt.Errorf("bootstrap user %s: %w", spec.Username, err)
		default:
			old.Claims, old.Disabled, old.UpdatedAt = spec.Claims, spec.Disabled, now
			if ok, _ := VerifyPassword(old.PasswordHash, spec.Password); !ok {
				if old.PasswordHash, err = HashPassword(spec.Password, cost); err != nil {
					return err
				}
			}
			if err := s.UpdateUser(ctx, old); err != nil {
				return fmt.Errorf("bootstrap user %s: %w", spec.Username, err)
			}
		}
	}
	return nil
}

// applyAdminTokens makes each declared token the one its name holds: a
// token whose value changed in the file replaces the old one.
func applyAdminTokens(ctx context.Context, s storage.AdminTokens, specs []AdminTokenSpec, now time.Time) error {
	if len(specs) == 0 {
		return nil
	}
	have, err := s.ListAdminTokens(ctx)
	if err != nil {
		return fmt.Errorf("bootstrap admin tokens: %w", err)
	}
	for _, spec := range specs {
		rec, err := AdminTokenFor(spec.Name, spec.Token, 0, now)
		if err != nil {
			return err
		}
		i := slices.IndexFunc(have, func(t *storage.AdminToken) bool { return t.Name == spec.Name })
		if i >= 0 && have[i].Hash == rec.Hash && have[i].ExpiresAt.IsZero() {
			continue
		}
		if i >= 0 {
			if err := s.DeleteAdminToken(ctx, have[i].ID); err != nil {
				return fmt.Errorf("bootstrap admin token %s: %w", spec.Name, err)
			}
		}
		if err := s.CreateAdminToken(ctx, rec); err != nil {
			return fmt.Errorf("bootstrap admin token %s: %w", spec.Name, err)
		}
	}
	return nil
}
