package config

import (
	"net/url"
	"regexp"
)

var (
	// DynamoDB table names: 3-255 characters of [A-Za-z0-9_.-].
	tableName = regexp.MustCompile(`^[A-Za-z0-9_.-]{3,255}$`)
	// AWS region names, such as us-east-1 or us-gov-west-1.
	regionName = regexp.MustCompile(`^[a-z]{2}(-[a-z0-9]+)+-[0-9]+$`)
)

// maxQueuePrefix leaves room in SQS's 80-character queue names for the pool
// name and ".fifo".
const maxQueuePrefix = 40

// validateAWS checks the aws store's fields, and that no other store type
// sets them.
func (s Store) validateAWS() error {
	if s.Type != StoreAWS {
		for _, f := range []struct {
			name string
			set  bool
		}{
			{"region", s.Region != ""}, {"endpoint", s.Endpoint != ""}, {"table", s.Table != ""},
			{"queuePrefix", s.QueuePrefix != ""}, {"createResources", s.CreateResources},
		} {
			if f.set {
				return fieldErr("store."+f.name, "applies to store type aws only, not %q", s.Type)
			}
		}
		return nil
	}
	switch {
	case s.Region == "":
		return fieldErr("store.region", "is required for store type aws, such as us-east-1")
	case !regionName.MatchString(s.Region):
		return fieldErr("store.region", "%q is not an AWS region name such as us-east-1", clip(s.Region))
	case s.Table == "":
		return fieldErr("store.table", "is required for store type aws")
	case !tableName.MatchString(s.Table):
		return fieldErr("store.table", "must be 3-255 characters of [A-Za-z0-9_.-], got %q", clip(s.Table))
	case len(s.QueuePrefix) > maxQueuePrefix || !queueChars(s.QueuePrefix):
		return fieldErr("store.queuePrefix", "must be at most %d characters of [A-Za-z0-9_-], got %q", maxQueuePrefix, clip(s.QueuePrefix))
	}
	if s.Endpoint != "" {
		u, err := url.Parse(s.Endpoint)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
			return fieldErr("store.endpoint", "must be an http or https base URL such as http://127.0.0.1:4566, got %q", clip(s.Endpoint))
		}
	}
	return nil
}

func queueChars(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}
