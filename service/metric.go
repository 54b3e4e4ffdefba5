package service

import (
	"context"

	"github.com/atelier-ml/atelier"
)

// LogMetrics stores a batch and tells watchers the run's latest values.
func (s *Runs) LogMetrics(ctx context.Context, workspace, runID string, batch *atelier.MetricBatch) error {
	if err := s.authorizeWrite(ctx, workspace, runID); err != nil {
		return err
	}
	if err := s.store.LogMetrics(ctx, workspace, runID, batch); err != nil {
		return err
	}
	s.publishLatest(workspace, runID, batch.Points)
	return nil
}

// LogBatch stores a run's params, tags and metric points together and tells watchers the
// run's latest values.
func (s *Runs) LogBatch(ctx context.Context, workspace, runID string, b *atelier.RunBatch) error {
	if err := s.authorizeWrite(ctx, workspace, runID); err != nil {
		return err
	}
	if err := s.store.LogBatch(ctx, workspace, runID, b); err != nil {
		return err
	}
	if len(b.Metrics.Points)+len(b.Metrics.Records) > 0 {
		s.publishLatest(workspace, runID, b.Metrics.Points)
	}
	return nil
}

// publishLatest tells watchers the last value of each metric of a batch.
func (s *Runs) publishLatest(workspace, runID string, points []atelier.MetricPoint) {
	if !s.events.Watched(workspace) {
		return
	}
	latest := map[string]atelier.MetricPoint{}
	for _, p := range points {
		latest[p.Name] = p
	}
	s.publish(workspace, atelier.EventMetrics, runID, latest)
}

// ListMetrics returns the latest value of each metric.
func (s *Runs) ListMetrics(ctx context.Context, workspace, runID string) ([]*atelier.MetricSummary, error) {
	if err := s.authorizeRunRead(ctx, workspace, runID); err != nil {
		return nil, err
	}
	return s.store.ListMetrics(ctx, workspace, runID)
}

// MetricHistory reads a series.
func (s *Runs) MetricHistory(ctx context.Context, workspace, runID, name string, q atelier.HistoryQuery) (*atelier.Series, error) {
	if err := s.authorizeRunRead(ctx, workspace, runID); err != nil {
		return nil, err
	}
	return s.store.MetricHistory(ctx, workspace, runID, name, q)
}

// MetricRecords reads a non-scalar metric.
func (s *Runs) MetricRecords(ctx context.Context, workspace, runID, name string) ([]*atelier.MetricRecord, error) {
	if err := s.authorizeRunRead(ctx, workspace, runID); err != nil {
		return nil, err
	}
	return s.store.MetricRecords(ctx, workspace, runID, name)
}
