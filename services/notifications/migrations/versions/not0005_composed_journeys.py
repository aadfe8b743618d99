"""composed journeys (a manager's SOP): journeys, their versions, members' runs, and the trigger facts dry runs replay

Revision ID: not0005
Revises: not0004
Create Date: 2026-12-06
"""

from alembic import op
import sqlalchemy as sa


revision = 'not0005'
down_revision = 'not0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('composed_journeys',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('name', sa.String(length=120), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('trigger', sa.String(length=32), nullable=False),
    sa.Column('branches', sa.Text(), nullable=False),
    sa.Column('created_by', sa.String(length=120), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_composed_journeys'))
    )
    op.create_index('ix_composed_journeys_trigger', 'composed_journeys', ['state', 'trigger'], unique=False)
    op.create_table('composed_journey_versions',
    sa.Column('journey_id', sa.Uuid(), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('definition', sa.Text(), nullable=False),
    sa.Column('created_by', sa.String(length=120), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['journey_id'], ['composed_journeys.id'],
                            name=op.f('fk_composed_journey_versions_journey_id_composed_journeys')),
    sa.PrimaryKeyConstraint('journey_id', 'version', name=op.f('pk_composed_journey_versions'))
    )
    op.create_table('journey_runs',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('journey_id', sa.Uuid(), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('member_id', sa.Uuid(), nullable=False),
    sa.Column('cause', sa.String(length=120), nullable=False),
    sa.Column('branch', sa.String(length=16), nullable=True),
    sa.Column('context', sa.Text(), nullable=True),
    sa.Column('step', sa.Integer(), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('due_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('exit_reason', sa.String(length=200), nullable=True),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['journey_id'], ['composed_journeys.id'],
                            name=op.f('fk_journey_runs_journey_id_composed_journeys')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_journey_runs')),
    sa.UniqueConstraint('journey_id', 'member_id', 'cause', name='uq_journey_runs_cause')
    )
    op.create_index('ix_journey_runs_due', 'journey_runs', ['state', 'due_at'], unique=False)
    op.create_index('ix_journey_runs_member', 'journey_runs', ['member_id', 'state'], unique=False)
    op.create_table('journey_trigger_facts',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('event', sa.String(length=32), nullable=False),
    sa.Column('member_id', sa.Uuid(), nullable=False),
    sa.Column('cause', sa.String(length=120), nullable=False),
    sa.Column('branch', sa.String(length=16), nullable=True),
    sa.Column('facts', sa.Text(), nullable=False),
    sa.Column('occurred_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_journey_trigger_facts'))
    )
    op.create_index('ix_journey_trigger_facts_event', 'journey_trigger_facts', ['event', 'occurred_at'], unique=False)
    op.create_index('ix_journey_trigger_facts_member', 'journey_trigger_facts', ['member_id', 'occurred_at'],
                    unique=False)


def downgrade() -> None:
    op.drop_index('ix_journey_trigger_facts_member', table_name='journey_trigger_facts')
    op.drop_index('ix_journey_trigger_facts_event', table_name='journey_trigger_facts')
    op.drop_table('journey_trigger_facts')
    op.drop_index('ix_journey_runs_member', table_name='journey_runs')
    op.drop_index('ix_journey_runs_due', table_name='journey_runs')
    op.drop_table('journey_runs')
    op.drop_table('composed_journey_versions')
    op.drop_index('ix_composed_journeys_trigger', table_name='composed_journeys')
    op.drop_table('composed_journeys')
