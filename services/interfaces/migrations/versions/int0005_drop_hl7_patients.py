"""HL7: drop hl7_patients; a facility's patient id (PID-3) is now a member identifier kept by members
(system urn:careloop:his:<MSH-4>), found through members' find_by_identifier

Links written before this revision are not carried over (they are keyed hashes and members has its own
database): the facility's next ADT^A04 for such a patient links it again through the identity rule.

Revision ID: int0005
Revises: int0004
Create Date: 2026-12-06
"""

from alembic import op
import sqlalchemy as sa


revision = 'int0005'
down_revision = 'int0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_table('hl7_patients')


def downgrade() -> None:
    op.create_table('hl7_patients',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('facility', sa.String(length=64), nullable=False),
    sa.Column('patient_index', sa.String(length=40), nullable=False),
    sa.Column('member_id', sa.Uuid(), nullable=False),
    sa.Column('linked_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_hl7_patients')),
    sa.UniqueConstraint('facility', 'patient_index', name='uq_hl7_patients_facility_patient')
    )
