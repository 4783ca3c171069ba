package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"time"

	bbolt "go.etcd.io/bbolt"
)

// runInspect prints what bbolt says about a database file: its pages,
// its free pages (which a commit writes out and Open reads back), and
// how long opening it read-only took.
func runInspect(args []string) error {
	fs := flag.NewFlagSet("inspect", flag.ExitOnError)
	db := fs.String("db", "", "bolt file (not in use by a broker: Open waits for its lock)")
	fs.Parse(args)
	if *db == "" {
		return errors.New("need -db")
	}
	fi, err := os.Stat(*db)
	if err != nil {
		return err
	}
	start := time.Now()
	d, err := bbolt.Open(*db, 0o600, &bbolt.Options{ReadOnly: true, Timeout: 5 * time.Second, FreelistType: bbolt.FreelistMapType, PreLoadFreelist: true})
	if err != nil {
		return err
	}
	defer d.Close()
	took := time.Since(start)
	var pages int64
	var depth int
	var keys int
	err = d.View(func(tx *bbolt.Tx) error {
		pages = int64(tx.Size()) / int64(d.Info().PageSize)
		return tx.ForEach(func(_ []byte, b *bbolt.Bucket) error {
			s := b.Stats()
			depth, keys = s.Depth, s.KeyN
			return nil
		})
	})
	if err != nil {
		return err
	}
	st := d.Stats()
	fmt.Printf("%s: %.1f MB, %d pages of %d B, %d keys, B+tree depth %d; free pages %d (%.1f%%), freelist %d B in memory-estimate; read-only open %v\n",
		*db, float64(fi.Size())/1e6, pages, d.Info().PageSize, keys, depth, st.FreePageN, 100*float64(st.FreePageN)/float64(pages),
		st.FreelistInuse, took.Round(time.Millisecond))
	return nil
}
