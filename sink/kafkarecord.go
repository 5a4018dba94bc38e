package sink

import (
	"encoding/binary"
	"errors"
	"time"
)

// kafkaRecord is one alert ready for Kafka: routing is decided at intake so
// that a spooled alert replays to the topic it was meant for.
type kafkaRecord struct {
	topic  string
	key    string
	check  string
	schema string
	value  []byte
	// at is when the sink took the alert; it dates how long a live
	// alert has been in memory only (zero for spooled ones).
	at time.Time
}

// recordVersion tags the spool encoding of a kafkaRecord.
const recordVersion = 1

// encode lays a record out for the spool: version, then topic, key, check
// and schema as uvarint-length strings, then the JSON value.
func (r *kafkaRecord) encode() []byte {
	b := make([]byte, 0, 1+4*binary.MaxVarintLen16+len(r.topic)+len(r.key)+len(r.check)+len(r.schema)+len(r.value))
	b = append(b, recordVersion)
	for _, s := range []string{r.topic, r.key, r.check, r.schema} {
		b = binary.AppendUvarint(b, uint64(len(s)))
		b = append(b, s...)
	}
	return append(b, r.value...)
}

// decodeRecord parses what encode wrote; spool records are checksummed, so
// an error here means a bug or a foreign file, never a torn write.
func decodeRecord(b []byte) (kafkaRecord, error) {
	var r kafkaRecord
	if len(b) == 0 || b[0] != recordVersion {
		return r, errors.New("unknown record version")
	}
	b = b[1:]
	var fields [4]string
	for i := range fields {
		n, k := binary.Uvarint(b)
		if k <= 0 || n > uint64(len(b)-k) {
			return r, errors.New("truncated record field")
		}
		fields[i] = string(b[k : k+int(n)])
		b = b[k+int(n):]
	}
	r.topic, r.key, r.check, r.schema = fields[0], fields[1], fields[2], fields[3]
	r.value = b
	return r, nil
}
