"""Answer keys of the exercises (``course.teach.keys``): one module per exercise module.

Never imported by a grading kernel: ``course grade`` leaves this folder out of what a submission
can see, so only the grader can judge answers.
"""
