package scripting

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/flowcheck/flowcheck/alert"
)

// The alert state file (Configuration.AlertStateFile) is a 16-byte header,
// then a payload of JSON lines: one stateMeta, then one savedAlert per
// engaged alert. Header: magic "FCAS", version (uint16), zero (uint16),
// payload length (uint32), CRC-32C of the payload (uint32), big-endian.
const (
	stateMagic     = "FCAS"
	stateVersion   = 1
	stateHeaderLen = 16
	// maxStatePayload bounds the file (about 200 000 alerts): what does not
	// fit is left out, counted, and released at stop rather than saved.
	maxStatePayload = 64 << 20
)

var stateCRC = crc32.MakeTable(crc32.Castagnoli)

// stateMeta is the first line of the payload.
type stateMeta struct {
	Instance string    `json:"instance"`
	Saved    time.Time `json:"saved"`
}

// savedAlert is one engaged alert in the state file: what its next events
// need (severity and score are derived again).
type savedAlert struct {
	ID        string     `json:"id"`
	Check     string     `json:"check"`
	Host      alert.Host `json:"host"`
	Value     int        `json:"value"`
	Message   string     `json:"message"`
	FirstSeen time.Time  `json:"first_seen"`
	LastSeen  time.Time  `json:"last_seen"`
}

// writeStateFile replaces the file at path, atomically (temporary file,
// fsync, rename, fsync of the directory), with meta and the records of recs
// that fit in limit bytes of payload; it returns how many did.
func writeStateFile(path string, meta stateMeta, recs []savedAlert, limit int) (int, error) {
	var buf bytes.Buffer
	buf.Write(make([]byte, stateHeaderLen))
	enc := json.NewEncoder(&buf) // one object per line
	if err := enc.Encode(meta); err != nil {
		return 0, err
	}
	n := 0
	for _, r := range recs {
		mark := buf.Len()
		if err := enc.Encode(r); err != nil {
			return 0, err
		}
		if buf.Len()-stateHeaderLen > limit {
			buf.Truncate(mark)
			break
		}
		n++
	}
	b := buf.Bytes()
	payload := b[stateHeaderLen:]
	copy(b, stateMagic)
	binary.BigEndian.PutUint16(b[4:], stateVersion)
	binary.BigEndian.PutUint32(b[8:], uint32(len(payload)))
	binary.BigEndian.PutUint32(b[12:], crc32.Checksum(payload, stateCRC))

	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return 0, err
	}
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		_ = os.Remove(tmp) // best effort: the error is what matters
		return 0, err
	}
	// The rename is durable once the directory is synced.
	if d, derr := os.Open(filepath.Dir(path)); derr == nil {
		_ = d.Sync() // not supported everywhere; the rename is done
		d.Close()
	}
	return n, nil
}

// readStateFile reads a state file written by writeStateFile. Any damage
// (short, wrong magic, version, length or CRC, bad JSON) is an error: the
// file is all or nothing.
func readStateFile(path string) (stateMeta, []savedAlert, error) {
	var meta stateMeta
	f, err := os.Open(path)
	if err != nil {
		return meta, nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, stateHeaderLen+maxStatePayload+1))
	if err != nil {
		return meta, nil, err
	}
	switch {
	case len(b) > stateHeaderLen+maxStatePayload:
		return meta, nil, fmt.Errorf("larger than the %d bytes of a state file", stateHeaderLen+maxStatePayload)
	case len(b) < stateHeaderLen:
		return meta, nil, fmt.Errorf("%d bytes, shorter than the header", len(b))
	case string(b[:4]) != stateMagic:
		return meta, nil, errors.New("not a flowcheck alert state file (bad magic)")
	case binary.BigEndian.Uint16(b[4:]) != stateVersion:
		return meta, nil, fmt.Errorf("version %d, this flowcheck reads version %d", binary.BigEndian.Uint16(b[4:]), stateVersion)
	case int(binary.BigEndian.Uint32(b[8:])) != len(b)-stateHeaderLen:
		return meta, nil, fmt.Errorf("payload of %d bytes, header says %d (truncated?)", len(b)-stateHeaderLen, binary.BigEndian.Uint32(b[8:]))
	}
	payload := b[stateHeaderLen:]
	if crc32.Checksum(payload, stateCRC) != binary.BigEndian.Uint32(b[12:]) {
		return meta, nil, errors.New("CRC mismatch")
	}
	lines := bytes.Split(bytes.TrimSuffix(payload, []byte("\n")), []byte("\n"))
	if err := json.Unmarshal(lines[0], &meta); err != nil {
		return meta, nil, fmt.Errorf("header line: %w", err)
	}
	recs := make([]savedAlert, 0, len(lines)-1)
	for i, l := range lines[1:] {
		var r savedAlert
		if err := json.Unmarshal(l, &r); err != nil {
			return meta, nil, fmt.Errorf("alert %d: %w", i+1, err)
		}
		recs = append(recs, r)
	}
	return meta, recs, nil
}

// probeWritable checks that the state file's directory takes its
// temporary file.
func probeWritable(path string) error {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	f.Close()
	return os.Remove(tmp)
}
